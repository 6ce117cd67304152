"""One dedup row per counted event (`analytics_consumer.dedup`), on SQLite and PostgreSQL.

The business key's row is the analytics' only claim: no inbox row per eventId. These tests
hold what the inbox did (an event delivered again at another offset is not counted, audited
nor reported again) and what the business key does (a redelivered webhook is a duplicate,
another content an anomaly, a failure claimed under its legacy key is recognised).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from analytics_consumer.store import AnalyticsStore
from common.business import Claimed, business_key, fingerprint, legacy_key
from common.events import PaymentEvent
from common.records import Inbound, TopicPartition
from common.topics import DEFAULT_TOPICS, EVENT_TYPES, GROUP_ANALYTICS
from dreamscape_dev.simulator import SimulationConfig
from dreamscape_dev.testing.builders import Document, event, inbound, payment_event
from tests.analytics.helpers import engine_for, report
from tests.analytics.streams import as_inbound, in_batches, simulated

AT = datetime(2025, 12, 18, 10, tzinfo=UTC)
TOPICS = [TopicPartition(DEFAULT_TOPICS.for_event(t), 0) for t in EVENT_TYPES]


def _store(engine: Engine, claimed: list[Claimed] | None = None) -> AnalyticsStore:
    options: dict[str, Any] = {} if claimed is None else {"on_claimed": claimed.append}
    store = AnalyticsStore(engine, **options)
    store.starting_offsets(TOPICS)
    return store


def _at(document: Document, offset: int) -> Inbound:
    return inbound(document, offset=offset)


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql)).scalar_one())


def _outcomes(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT event_id, outcome FROM analytics_audit"))
        return {event_id: outcome for event_id, outcome in rows}


def _verdicts(claimed: list[Claimed]) -> list[tuple[str, str]]:
    return sorted((e, v) for c in claimed for e, v in c.verdicts.items())


def stored_digest(event: PaymentEvent) -> str:
    """The fingerprint as defined (`common.business.fingerprint`): SHA-256 of `json.dumps` of
    the payload's fields but its occurrence time, amounts as normalised decimal text."""
    content = {}
    for name in event.payload.__struct_fields__:
        if name in ("initiated_at", "completed_at", "failed_at", "refunded_at"):
            continue
        value = getattr(event.payload, name)
        content[name] = format(value.normalize(), "f") if isinstance(value, Decimal) else value
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class TestFingerprint:
    def test_the_planned_fingerprint_is_the_stored_one_for_a_simulated_stream(self) -> None:
        """Over every event type of a simulated stream, `common.business.fingerprint` (planned per payload type) gives the digest of the stored text: `json.dumps` of the content, keys sorted."""
        events = [i.event for i in as_inbound(simulated(SimulationConfig(flows=200, seed=3)))]
        assert len({type(e) for e in events}) == len(EVENT_TYPES)
        assert [fingerprint(e) for e in events] == [stored_digest(e) for e in events]

    @settings(max_examples=60, deadline=None)
    @given(
        message=st.text(min_size=1, max_size=40),
        amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**6), places=2),
    )
    def test_any_text_and_amount_give_the_stored_digest(
        self, message: str, amount: Decimal
    ) -> None:
        """Quotes, control characters, non-ASCII text and trailing zeros are written as `json.dumps` writes them."""
        failed = payment_event("payment.failed", errorMessage=message, amount=amount)
        refunded = payment_event("payment.refunded", reason=message, refundAmount=amount)
        for parsed in (failed, refunded):
            assert fingerprint(parsed) == stored_digest(parsed)


@pytest.mark.integration
class TestOneRowPerEvent:
    def test_a_stream_writes_one_business_fact_per_counted_event_and_no_inbox_row(
        self, database_url: str
    ) -> None:
        """Duplicates and reordering in a stream leave one business_fact row per counted event and none in processed_event."""
        stream = as_inbound(simulated(SimulationConfig(flows=150, seed=4, duplicate_rate=0.1)))
        engine = engine_for(database_url)
        store = AnalyticsStore(engine)
        store.starting_offsets(sorted({i.record.tp for i in stream}))
        for batch in in_batches(stream, 61):
            store.apply(batch)
        counted = _count(engine, "SELECT count(*) FROM analytics_audit WHERE outcome = 'counted'")
        assert _count(engine, "SELECT count(*) FROM business_fact") == counted
        assert _count(engine, "SELECT count(*) FROM processed_event") == 0


@pytest.mark.integration
class TestDeliveredAgain:
    def test_a_counted_event_at_another_offset_is_seen_not_counted_audited_or_reported(
        self, database_url: str
    ) -> None:
        """The same eventId at a later offset, in a later batch, changes no figure, adds no audit row and is not reported as a fact."""
        engine = engine_for(database_url)
        claimed: list[Claimed] = []
        store = _store(engine, claimed)
        completed = event("payment.completed", at=AT, paymentId="pay_1")
        store.apply([_at(completed, 0)])
        before = report(engine)
        store.apply([_at(completed, 1)])
        assert report(engine) == before
        assert _outcomes(engine) == {completed["eventId"]: "counted"}
        assert _verdicts(claimed) == [(completed["eventId"], "new")]

    def test_a_duplicate_delivered_again_is_audited_and_reported_once(
        self, database_url: str
    ) -> None:
        """A redelivered webhook (new eventId, same content) is one duplicate, however often its record is delivered."""
        engine = engine_for(database_url)
        claimed: list[Claimed] = []
        store = _store(engine, claimed)
        completed = event("payment.completed", at=AT, paymentId="pay_1")
        again = event(completed)
        store.apply([_at(completed, 0), _at(again, 1)])
        store.apply([_at(again, 2)])
        store.apply([_at(again, 3), _at(completed, 4)])
        assert report(engine)["events"]["payment.completed"] == 1
        assert _outcomes(engine) == {completed["eventId"]: "counted", again["eventId"]: "duplicate"}
        assert _verdicts(claimed) == sorted(
            [(completed["eventId"], "new"), (again["eventId"], "duplicate")]
        )

    def test_an_anomaly_delivered_again_is_recorded_and_reported_once(
        self, database_url: str
    ) -> None:
        """A second refund of one refundId with another amount is one anomaly row and one report, delivered twice."""
        engine = engine_for(database_url)
        claimed: list[Claimed] = []
        store = _store(engine, claimed)
        refund = event("payment.refunded", at=AT, paymentId="pay_1", refundId="re_1")
        odd = event(refund, refundAmount=Decimal("1.00"))
        store.apply([_at(refund, 0), _at(odd, 1)])
        store.apply([_at(odd, 2)])
        assert _count(engine, "SELECT count(*) FROM business_anomaly") == 1
        assert [e for c in claimed for e in c.of("anomaly")] == [odd["eventId"]]
        assert _outcomes(engine)[odd["eventId"]] == "anomaly"

    def test_two_instances_given_one_event_at_two_offsets_count_it_once(
        self, database_url: str
    ) -> None:
        """One eventId on two partitions, applied by two instances, is counted by the first only."""
        engine = engine_for(database_url)
        completed = event("payment.completed", at=AT, paymentId="pay_1")
        first, second = _store(engine), _store(engine)
        topic = DEFAULT_TOPICS.for_event("payment.completed")
        second.starting_offsets([TopicPartition(topic, 1)])
        first.apply([_at(completed, 0)])
        second.apply([inbound(completed, partition=1, offset=0)])
        assert report(engine)["events"]["payment.completed"] == 1
        assert _count(engine, "SELECT count(*) FROM analytics_audit") == 1


@pytest.mark.integration
class TestLegacyKey:
    def _claimed_by_an_earlier_release(self, engine: Engine, document: Document) -> None:
        """The row `claim_facts` wrote for a failure before issue 21: keyed by paymentId only."""
        parsed = payment_event(document, event_id=document["eventId"])
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO business_fact (consumer, key, fingerprint, event_id, first_seen)"
                    " VALUES (:consumer, :key, :print, :event_id, '2025-12-18 10:00:00')"
                ),
                {
                    "consumer": GROUP_ANALYTICS,
                    "key": legacy_key(parsed),
                    "print": fingerprint(parsed),
                    "event_id": parsed.event_id,
                },
            )
        assert business_key(parsed) != legacy_key(parsed)

    def test_a_failure_counted_under_its_legacy_key_is_not_counted_again(
        self, database_url: str
    ) -> None:
        """The same failure event, counted by the release before issue 21 and delivered again, is seen; its redelivered webhook is a duplicate; another attempt counts."""
        engine = engine_for(database_url)
        failed = event("payment.failed", at=AT, paymentId="pay_1")
        self._claimed_by_an_earlier_release(engine, failed)
        redelivered = event(failed)
        other = event(failed, errorCode="insufficient_funds", errorMessage="Not enough")
        claimed: list[Claimed] = []
        _store(engine, claimed).apply([_at(failed, 0), _at(redelivered, 1), _at(other, 2)])
        assert report(engine)["failure_reasons"] == {"insufficient_funds": 1}
        assert _verdicts(claimed) == sorted(
            [(redelivered["eventId"], "duplicate"), (other["eventId"], "new")]
        )
