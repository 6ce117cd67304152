"""`voyage-consumer status <booking_id>`: the stored booking, its facts, and how it was derived.

The booking is derived again from its stored facts and compared with the stored rows, so
the command also says whether the stored projection is the one today's rules would write
(it would differ after a change of rules, until the booking is touched again).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from common.db import make_engine, normalise_url
from common.settings import ConfigurationError, load_settings
from voyage_consumer import store
from voyage_consumer.domain import derive
from voyage_consumer.explain import explain, fact_line, when
from voyage_consumer.service import SERVICE
from voyage_consumer.settings import VoyageSettings
from voyage_consumer.tables import SCHEMA

EXIT_OK, EXIT_NOT_FOUND, EXIT_CONFIG = 0, 1, 2


def report(booking_id: str, facts: list[Any], rows: dict[str, list[dict[str, Any]]]) -> str:
    """The text `status` prints for a booking (facts: its `Fact`s; rows: `stored_rows`)."""
    out = [f"booking {booking_id}"]
    stored = rows["booking"][0] if rows["booking"] else None
    if stored is None:
        out.append("  no booking row (only refunds are known so far)")
    else:
        out += [
            f"  status {stored['status']}, inventory {stored['inventory_hold']}",
            f"  user {stored['user_id']}, payment {stored['payment_id']}, "
            f"transaction {stored['transaction_id'] or '-'}",
            f"  confirmation {stored['confirmation_number'] or '-'}",
            f"  amount {stored['amount']} {stored['currency']}, "
            f"refunded {stored['refunded_amount']}, updated {when(stored['updated_at'])}",
        ]
    ordered = sorted(facts, key=lambda f: f.order_key)
    out.append(f"facts ({len(ordered)}, by time):")
    out += [f"  {fact_line(f)}" for f in ordered]
    derivation = derive(booking_id, ordered)
    if derivation is not None:
        out.append("derivation:")
        out += [f"  {line}" for line in explain(derivation)]
        if stored is not None:
            derived = derivation.booking._asdict() | {"inventory_hold": derivation.hold}
            differ = [k for k, v in derived.items() if stored.get(k) != v]
            out.append(
                "  stored row matches the derivation"
                if not differ
                else f"  stored row differs from today's derivation in: {', '.join(differ)}"
            )
    anomalies = rows["booking_anomaly"]
    out.append(f"anomalies ({len(anomalies)}):")
    out += [f"  {a['kind']} {a['subject']}: {a['detail']}" for a in anomalies]
    return "\n".join(out)


def status(booking_id: str) -> int:
    """Print the booking's report; 1 if nothing is known about it, 2 on a configuration error."""
    try:
        settings = load_settings(VoyageSettings)
    except ConfigurationError as exc:
        print(f"{SERVICE}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    url = normalise_url(SCHEMA.url(settings))
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").exists():
        print(f"{SERVICE}: no database at {parsed.database}", file=sys.stderr)
        return EXIT_NOT_FOUND
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            facts = store.load_facts(session=session, booking_ids=[booking_id])
            rows = store.stored_rows(session=session, booking_id=booking_id)
    except DBAPIError as exc:
        print(f"{SERVICE}: cannot read the database: {exc.orig}", file=sys.stderr)
        return EXIT_NOT_FOUND
    finally:
        engine.dispose()
    known = facts.get(booking_id, [])
    if not known and not rows["booking"]:
        print(f"{SERVICE}: nothing is known about booking {booking_id}", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(report(booking_id, known, rows))
    return EXIT_OK
