"""Revision `0002_hold_in_booking` on a populated database (SQLite, then PostgreSQL).

The generic checks (models, adoption, downgrade) are in tests/integration/test_migrations.py;
here, what this revision does to voyage's rows: each booking keeps its inventory hold, now a
column of its row, and the facts written before it are still the inbox.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import inspect, text
from sqlmodel import Session

from common.db import make_engine
from common.schema import downgrade, migrate
from dreamscape_dev.testing.builders import inbound
from tests.voyage.bookings import document
from voyage_consumer import store
from voyage_consumer.handler import VoyageHandler, VoyageMetrics
from voyage_consumer.tables import SCHEMA

pytestmark = pytest.mark.integration

STATUSES = {
    "bk_pending": ("payment_pending", "held"),
    "bk_confirmed": ("confirmed", "converted"),
    "bk_partial": ("partially_refunded", "converted"),
    "bk_failed": ("payment_failed", "released"),
    "bk_cancelled": ("cancelled", "released"),
}


def test_each_booking_keeps_its_hold_and_stored_facts_still_stop_their_redelivery(
    database_url: str,
) -> None:
    """Bookings of every status written at 0001 carry their hold after 0002, `inventory_hold` is gone, and a fact stored before is not applied again."""
    engine = make_engine(database_url)
    migrate(engine, SCHEMA, "0001_baseline")
    old = document("initiated", booking="bk_pending")
    with engine.begin() as connection:
        for booking, (status, hold) in STATUSES.items():
            connection.execute(
                text(
                    "INSERT INTO booking VALUES (:b, :s, 'u', 'p', NULL, NULL, '10.00', 'EUR',"
                    " '0.00', '2025-12-18 10:00:00.000000')"
                ),
                {"b": booking, "s": status},
            )
            connection.execute(
                text("INSERT INTO inventory_hold VALUES (:b, :h, '2025-12-18 10:00:00.000000')"),
                {"b": booking, "h": hold},
            )
        connection.execute(
            text(
                "INSERT INTO payment_fact (booking_id, event_id, kind, payment_id, user_id,"
                " amount, currency, occurred_at) VALUES ('bk_pending', :e, 'initiated', 'pay_1',"
                " 'usr_1', '100.00', 'EUR', '2025-12-18 10:00:00.000000')"
            ),
            {"e": old["eventId"]},
        )
    assert migrate(engine, SCHEMA) == ["0002_hold_in_booking"]
    assert "inventory_hold" not in inspect(engine).get_table_names()
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT booking_id, status, inventory_hold FROM booking"))
        assert {b: (s, h) for b, s, h in rows} == STATUSES

    registry = CollectorRegistry()
    VoyageHandler(engine, VoyageMetrics(registry))([inbound(old)])
    with Session(engine) as session:
        assert store.count_processed(session=session) == 1
    assert registry.get_sample_value("voyage_duplicate_events_total") == 1

    downgrade(engine, SCHEMA, "0001_baseline")
    with engine.connect() as connection:
        holds = connection.execute(text("SELECT booking_id, status FROM inventory_hold"))
        assert {b: h for b, h in holds} == {b: h for b, (_, h) in STATUSES.items()}
    engine.dispose()
