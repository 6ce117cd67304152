"""The send claims of the ledger, straight through the store (no SMTP, no broker)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlmodel import select

from common.db import make_engine, transaction
from common.schema import migrate
from dreamscape_dev.testing.running import wait_until
from notification_consumer import store
from notification_consumer.domain import Outcome
from notification_consumer.presence import Presence, is_gone
from notification_consumer.tables import SCHEMA, NotificationClaim

pytestmark = pytest.mark.integration

NOW = datetime(2025, 12, 18, 10, 30, tzinfo=UTC)
KEYS = [("e-1", "receipt"), ("e-2", "receipt"), ("e-2", "refund"), ("e-3", "receipt")]


def claims(database_url: str) -> set[tuple[str, str]]:
    with transaction(make_engine(database_url)) as session:
        return {(c.event_id, c.kind) for c in session.exec(select(NotificationClaim))}


def claim(database_url: str, owner: str, at: datetime = NOW) -> set[tuple[str, str]]:
    """Claim `KEYS` as `owner` at `at`; the keys it holds."""
    with transaction(make_engine(database_url)) as session:
        return store.claim_sends(session=session, keys=KEYS, owner=owner, now=at)


def gone(owner: str, engine: Engine) -> bool:
    """Whether another member would find `owner` gone (its presence lock free)."""
    with transaction(engine) as session:
        return is_gone(session, owner)


def outcome(event_id: str, kind: str) -> Outcome:
    return Outcome(event_id, kind, "sent", "<m@x>", "booking_1", "pay_1", 250, "ok", None)


class TestReleasingClaims:
    def test_recording_outcomes_releases_exactly_their_claims(self, database_url: str) -> None:
        """Recording two outcomes drops those two claims, keeps the others, and ignores a key with no claim."""
        engine = make_engine(database_url)
        migrate(engine, SCHEMA)
        with transaction(engine) as session:
            held = store.claim_sends(session=session, keys=KEYS, owner="a", now=NOW)
        assert held == set(KEYS)
        with transaction(engine) as session:
            store.record_outcomes(
                session=session,
                outcomes=[outcome("e-2", "receipt"), outcome("e-3", "receipt")],
                now=NOW,
            )
            store.release_claims(session=session, keys=[("e-9", "receipt")])
        assert claims(database_url) == {("e-1", "receipt"), ("e-2", "refund")}


class TestTakingClaimsOver:
    def test_a_claim_of_a_running_member_is_left_to_it(self, database_url: str) -> None:
        """B finds A's fresh claims while A runs (holds its presence): B holds none of them."""
        engine = make_engine(database_url)
        migrate(engine, SCHEMA)
        a = Presence(engine, "a")
        a.ensure()
        assert claim(database_url, "a") == set(KEYS)

        assert claim(database_url, "b") == set()
        a.close()

    def test_a_claim_older_than_the_ttl_is_taken_over_even_from_a_running_member(
        self, database_url: str
    ) -> None:
        """A member stuck longer than CLAIM_TTL (or on SQLite, which cannot tell) loses its claims."""
        engine = make_engine(database_url)
        migrate(engine, SCHEMA)
        a = Presence(engine, "a")
        a.ensure()
        assert claim(database_url, "a") == set(KEYS)
        later = NOW + store.CLAIM_TTL + store.CLAIM_TTL / 10
        b = Presence(engine, "b")
        b.ensure()

        assert claim(database_url, "b", at=later) == set(KEYS)
        assert claim(database_url, "a", at=later) == set(), "now B's, and B is running"
        a.close()
        b.close()

    @pytest.mark.postgres
    def test_the_claims_of_a_killed_member_are_taken_over_without_waiting_for_the_ttl(
        self, postgres_url: str
    ) -> None:
        """A process claims, then is SIGKILLed before recording: as soon as the server has ended its session, B holds every claim (PostgreSQL; the claims are fresh, far inside CLAIM_TTL)."""
        migrate(make_engine(postgres_url), SCHEMA)
        member = textwrap.dedent(f"""
            import sys, time
            from common.db import make_engine, transaction
            from notification_consumer import store
            from notification_consumer.presence import Presence
            from tests.notification.test_claims import KEYS, NOW
            engine = make_engine({postgres_url!r})
            presence = Presence(engine, "a")  # held (and its lock with it) until killed
            presence.ensure()
            with transaction(engine) as session:
                store.claim_sends(session=session, keys=KEYS, owner="a", now=NOW)
            print("claimed", flush=True)
            time.sleep(600)
        """)
        process = subprocess.Popen(
            [sys.executable, "-c", member], stdout=subprocess.PIPE, text=True
        )
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == "claimed\n"
            assert claim(postgres_url, "b") == set(), "A is alive: its claims are its own"
            process.kill()
            process.wait(10)

            wait_until(lambda: claim(postgres_url, "b") == set(KEYS), 10, "B holding A's claims")
        finally:
            process.kill()
            process.wait(10)
        assert claims(postgres_url) == set(KEYS)

    @pytest.mark.postgres
    def test_presence_is_taken_again_after_the_server_ended_its_session(
        self, postgres_url: str
    ) -> None:
        """A database restart or a failover ends the member's session: the next `ensure` takes the lock again, so the member's claims are its own once more."""
        engine = make_engine(postgres_url)
        a = Presence(engine, "a")
        a.ensure()
        with engine.connect() as admin:
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        wait_until(lambda: gone("a", engine), 10, "the server ending A's session")

        a.ensure()

        assert not gone("a", engine)
        a.close()
        wait_until(lambda: gone("a", engine), 10, "the server ending A's closed session")
