"""The send claims of the ledger, straight through the repository (no SMTP, no broker)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import select

from common.db import make_engine, transaction
from common.schema import migrate
from notification_consumer import repository
from notification_consumer.models import SCHEMA, NotificationClaim
from notification_consumer.notifications import Outcome

NOW = datetime(2025, 12, 18, 10, 30, tzinfo=UTC)
KEYS = [("e-1", "receipt"), ("e-2", "receipt"), ("e-2", "refund"), ("e-3", "receipt")]


def claims(database_url: str) -> set[tuple[str, str]]:
    with transaction(make_engine(database_url)) as session:
        return {(c.event_id, c.kind) for c in session.exec(select(NotificationClaim))}


def outcome(event_id: str, kind: str) -> Outcome:
    return Outcome(event_id, kind, "sent", "<m@x>", "booking_1", "pay_1", 250, "ok", None)


class TestReleasingClaims:
    def test_recording_outcomes_releases_exactly_their_claims(self, database_url: str) -> None:
        """Recording two outcomes drops those two claims, keeps the others, and ignores a key with no claim."""
        engine = make_engine(database_url)
        migrate(engine, SCHEMA)
        with transaction(engine) as session:
            held = repository.claim_sends(session=session, keys=KEYS, owner="a", now=NOW)
        assert held == set(KEYS)
        with transaction(engine) as session:
            repository.record_outcomes(
                session=session,
                outcomes=[outcome("e-2", "receipt"), outcome("e-3", "receipt")],
                now=NOW,
            )
            repository.release_claims(session=session, keys=[("e-9", "receipt")])
        assert claims(database_url) == {("e-1", "receipt"), ("e-2", "refund")}
