"""The run loop against the real broker, in-process: DLQ, retries, rebalances, missing topics.

Each test runs one or two `Runner`s on threads of this process (see `helpers.ObservedRunner`)
with fast group timings and short retry delays, and observes them through their lifecycle
bus and through what lands in the topics.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer

from common import dlq
from common.errors import FatalClientError, TransientError
from common.lifecycle import ConsumerError, OffsetsStored, RecordDeadLettered, TopicMissing
from common.records import Inbound, OutboundRecord
from common.topics import Topics
from dreamscape_dev.testing.broker import BrokerChoice, ProxiedBroker, create_topics
from tests.integration.helpers import (
    ObservedRunner,
    dlq_records,
    event_id,
    payment_record,
    payment_records,
    produce,
    runner_settings,
    wait_until,
)

pytestmark = pytest.mark.integration

TIMEOUT_S = 20.0
ORIGINAL_TS_MS = 1_766_053_800_000  # 2025-12-18T10:30:00Z, the spec example's time


def _group() -> str:
    return f"g-{uuid.uuid4().hex[:8]}"


def _accept(_batch: Sequence[Inbound]) -> None:
    return None


def _handled_by(*members: ObservedRunner) -> set[str]:
    """eventIds handled by any of `members`."""
    return {i for member in members for i in member.recorder.handled_ids()}


def _why_not_retrying(consumer: ObservedRunner) -> str | None:
    """Why a runner that should be retrying never will (it died or dead-lettered instead)."""
    if not consumer.alive:
        return f"the runner died: {consumer.error!r}"
    if letters := consumer.recorder.dead_lettered():
        return f"{len(letters)} record(s) dead-lettered instead, first as {letters[0].error_type}: {letters[0].message}"
    return None


class TestDeadLetterRoundTrip:
    def test_poison_record_is_dead_lettered_byte_for_byte_and_the_next_record_is_processed(
        self, kafka_bootstrap_servers: str, topics: Topics
    ) -> None:
        """A poison record lands in the DLQ with its key, value and headers intact plus every dlq.* header, and the record after it is handled."""
        original_headers = [
            ("trace-id", b"trace-\x00\x01\xff"),
            ("content-type", b"application/json"),
            ("trace-id", b"second value, same name"),
            ("empty", b""),
            ("null", None),
        ]
        poison = OutboundRecord(
            topic=topics.for_event("payment.initiated"),
            key=b"booking-42",
            value=b'{"eventId": "not json at all',
            headers=tuple(original_headers),
        )
        valid = payment_record(topics, key=b"booking-42")  # same key: same partition, after
        delivered = produce(kafka_bootstrap_servers, [poison, valid], timestamp_ms=ORIGINAL_TS_MS)
        assert delivered[0].tp == delivered[1].tp
        group = _group()
        before = datetime.now(UTC)

        with ObservedRunner(
            _accept, runner_settings(topics, kafka_bootstrap_servers), group=group
        ) as consumer:
            wait_until(
                lambda: event_id(valid) in consumer.recorder.handled_ids(),
                TIMEOUT_S,
                "the record after the poison one to be handled",
            )
            consumer.stop()
        after = datetime.now(UTC)

        letters = dlq_records(kafka_bootstrap_servers, consumer.dlq_topic)
        assert len(letters) == 1
        letter = letters[0]
        assert (letter.key, letter.value) == (poison.key, poison.value)
        assert [h for h in letter.headers if not h[0].startswith("dlq.")] == original_headers
        dlq_headers = {name: value for name, value in letter.headers if name.startswith("dlq.")}
        assert set(dlq_headers) == {
            dlq.H_ERROR_TYPE,
            dlq.H_ERROR_MESSAGE,
            dlq.H_TOPIC,
            dlq.H_PARTITION,
            dlq.H_OFFSET,
            dlq.H_TIMESTAMP,
            dlq.H_GROUP,
            dlq.H_ATTEMPTS,
            dlq.H_FAILED_AT,
        }
        entry = dlq.read_entry(letter)
        assert entry.error_type == "not_json"
        assert entry.error_message
        assert entry.original_topic == poison.topic
        assert (entry.original_partition, entry.original_offset) == (
            delivered[0].partition,
            delivered[0].offset,
        )
        assert dlq_headers[dlq.H_TIMESTAMP] == b"2025-12-18T10:30:00+00:00"
        assert entry.group == group
        assert entry.attempts == 1
        failed_at = datetime.fromisoformat(entry.failed_at)
        assert failed_at.tzinfo is not None
        assert before - timedelta(seconds=1) <= failed_at <= after + timedelta(seconds=1)
        assert consumer.recorder.handled_ids().count(event_id(valid)) >= 1

    def test_a_record_too_large_for_its_letter_gets_a_marker_letter_and_the_next_is_handled(
        self, kafka_bootstrap_servers: str, topics: Topics
    ) -> None:
        """A 1,020,000-byte poison record, whose letter exceeds the DLQ producer's message.max.bytes, is dead-lettered as a marker (size, SHA-256, position) once, not retried for ever, and the record after it is handled (issue 10, finding 6)."""
        topic = topics.for_event("payment.initiated")
        huge = b"x" * 1_020_000
        big = Producer(
            {"bootstrap.servers": kafka_bootstrap_servers, "message.max.bytes": 2_000_000}
        )
        big.produce(topic, key=b"booking-7", value=huge)
        assert big.flush(30) == 0
        valid = payment_record(topics, key=b"booking-7")
        produce(kafka_bootstrap_servers, [valid])

        with ObservedRunner(
            _accept, runner_settings(topics, kafka_bootstrap_servers), group=_group()
        ) as consumer:
            wait_until(
                lambda: event_id(valid) in consumer.recorder.handled_ids(),
                TIMEOUT_S,
                "the record after the huge one to be handled",
            )
            consumer.stop()

        [letter] = dlq_records(kafka_bootstrap_servers, consumer.dlq_topic)
        headers = dict(letter.headers)
        assert headers[dlq.H_VALUE_OMITTED] == b"MSG_SIZE_TOO_LARGE"
        assert headers[dlq.H_ORIGINAL_SIZE] == b"1020000"
        assert headers[dlq.H_ORIGINAL_SHA256] == hashlib.sha256(huge).hexdigest().encode()
        assert headers[dlq.H_ERROR_TYPE] == b"not_json"
        entry = dlq.read_entry(letter)
        assert (entry.original_topic, entry.original_offset) == (topic, 0)
        assert entry.value_omitted == "MSG_SIZE_TOO_LARGE"
        assert [r for r in consumer.recorder.retries() if r.kind == "transient"] == []


class TestTransientFailures:
    def test_a_failing_dependency_pauses_retries_and_recovers_with_nothing_dead_lettered(
        self, kafka_bootstrap_servers: str, topics: Topics
    ) -> None:
        """A handler raising TransientError is retried with its partitions paused until the dependency is back, then every record is handled and none dead-lettered."""
        records = payment_records(topics, 12)
        produce(kafka_bootstrap_servers, records)
        healthy = threading.Event()

        def handle(batch: Sequence[Inbound]) -> None:
            if not healthy.is_set():
                raise TransientError("the database is down")

        with ObservedRunner(
            handle, runner_settings(topics, kafka_bootstrap_servers), group=_group()
        ) as consumer:
            wait_until(
                lambda: len(consumer.recorder.retries()) >= 2,
                TIMEOUT_S,
                "two retries",
                abort=lambda: _why_not_retrying(consumer),
            )
            assert consumer.recorder.handled_ids() == []
            healthy.set()
            wanted = {event_id(r) for r in records}
            wait_until(
                lambda: wanted <= set(consumer.recorder.handled_ids()),
                TIMEOUT_S,
                "every record to be handled after recovery",
            )
            consumer.stop()

        retries = consumer.recorder.retries()
        assert {r.kind for r in retries} == {"transient"}
        assert [r.attempt for r in retries[:2]] == [1, 2]
        flow = [call for call, _ in consumer.flow_control]
        assert flow[:1] == ["pause"], "partitions were not paused for the retries"
        assert flow[-1:] == ["resume"], "partitions were not resumed after recovery"
        assert consumer.recorder.dead_lettered() == []
        assert dlq_records(kafka_bootstrap_servers, consumer.dlq_topic) == []

    def test_an_unreachable_dlq_is_retried_and_the_poison_record_never_skipped(
        self, kafka_bootstrap_servers: str, topics: Topics
    ) -> None:
        """A DLQ write failing transiently is retried until acknowledged, and the poison record's offset is stored only afterwards."""
        poison = OutboundRecord(topics.for_event("payment.failed"), b"k", b"[1, 2, 3]")
        valid = payment_record(topics, "payment.failed", key=b"k")
        delivered = produce(kafka_bootstrap_servers, [poison, valid])
        failures_left = [3]

        class FlakyDlq:
            """Fails the first `failures_left` writes as the real producer does when cut off."""

            def __init__(self, inner: object) -> None:
                self.inner = inner

            def send_confirmed(
                self, records: Sequence[OutboundRecord], timeout_s: float = 30.0
            ) -> None:
                if failures_left[0] > 0:
                    failures_left[0] -= 1
                    raise TransientError(
                        "0 record(s) unacknowledged, 1 failed: ['Local: Broker transport failure']"
                    )
                self.inner.send_confirmed(records, timeout_s)  # type: ignore[attr-defined]

        with ObservedRunner(
            _accept,
            runner_settings(topics, kafka_bootstrap_servers),
            group=_group(),
            producer=FlakyDlq,
        ) as consumer:
            wait_until(
                lambda: (
                    consumer.recorder.dead_lettered()
                    and event_id(valid) in consumer.recorder.handled_ids()
                ),
                TIMEOUT_S,
                "the poison record to be dead-lettered and the next one handled",
                abort=lambda: None if consumer.alive else f"the runner died: {consumer.error!r}",
            )
            consumer.stop()

        assert failures_left == [0]
        retries = consumer.recorder.retries()
        assert len(retries) >= 3
        assert all(r.kind == "transient" for r in retries)
        letters = dlq_records(kafka_bootstrap_servers, consumer.dlq_topic)
        assert [(x.key, x.value) for x in letters] == [(poison.key, poison.value)]
        events = consumer.recorder.events
        dead_at = next(i for i, e in enumerate(events) if isinstance(e, RecordDeadLettered))
        stored_at = next(
            i
            for i, e in enumerate(events)
            if isinstance(e, OffsetsStored)
            and e.offsets.get(delivered[0].tp, -1) > delivered[0].offset
        )
        assert dead_at < stored_at, "the poison offset was stored before its DLQ write landed"

    def test_a_dlq_cut_off_from_the_network_is_retried_until_it_is_back(
        self, kafka_bootstrap_servers: str, topics: Topics, proxied_kafka: ProxiedBroker
    ) -> None:
        """A DLQ on a broker the network cuts off is retried (partitions paused) until the link is restored, then the poison record lands there and the next record is handled."""
        proxied_kafka.proxy.cut()
        poison = OutboundRecord(topics.for_event("payment.completed"), b"k", b"")
        valid = payment_record(topics, "payment.completed", key=b"k")
        produce(kafka_bootstrap_servers, [poison, valid])
        settings = runner_settings(topics, kafka_bootstrap_servers)
        dlq_config = {
            **settings.producer_config(),
            "bootstrap.servers": proxied_kafka.bootstrap_servers,
            "message.timeout.ms": "500",
            "reconnect.backoff.ms": "20",
            "reconnect.backoff.max.ms": "100",
        }

        with ObservedRunner(
            _accept, settings, group=_group(), producer_config=dlq_config
        ) as consumer:
            wait_until(
                lambda: len(consumer.recorder.retries()) >= 2,
                TIMEOUT_S,
                "two retries of the DLQ write",
                abort=lambda: _why_not_retrying(consumer),
            )
            assert consumer.recorder.dead_lettered() == []
            proxied_kafka.proxy.restore()
            wait_until(
                lambda: (
                    consumer.recorder.dead_lettered()
                    and event_id(valid) in consumer.recorder.handled_ids()
                ),
                TIMEOUT_S,
                "the poison record to be dead-lettered once the DLQ is reachable",
                abort=lambda: None if consumer.alive else f"the runner died: {consumer.error!r}",
            )
            consumer.stop()

        assert {r.kind for r in consumer.recorder.retries()} == {"transient"}
        letters = dlq_records(proxied_kafka.bootstrap_servers, consumer.dlq_topic)
        assert letters
        assert {(x.key, x.value, dlq.read_entry(x).error_type) for x in letters} == {
            (b"k", b"", "empty_value")
        }


class TestUnexpectedErrors:
    def test_a_bug_on_one_record_dead_letters_it_after_max_attempts_and_spares_its_neighbours(
        self, kafka_bootstrap_servers: str, topics: Topics
    ) -> None:
        """A handler raising ValueError for one eventId dead-letters that record after 3 attempts as unexpected:ValueError while its neighbours are handled."""
        records = [payment_record(topics, key=b"same-partition") for _ in range(5)]
        bad = event_id(records[2])
        produce(kafka_bootstrap_servers, records)

        def handle(batch: Sequence[Inbound]) -> None:
            if any(i.event.event_id == bad for i in batch):
                raise ValueError(f"cannot handle {bad}")

        with ObservedRunner(
            handle, runner_settings(topics, kafka_bootstrap_servers), group=_group()
        ) as consumer:
            wanted = {event_id(r) for r in records} - {bad}
            wait_until(
                lambda: (
                    wanted <= set(consumer.recorder.handled_ids())
                    and consumer.recorder.dead_lettered()
                ),
                TIMEOUT_S,
                "the neighbours to be handled and the bad record dead-lettered",
            )
            consumer.stop()

        assert bad not in consumer.recorder.handled_ids()
        letters = [
            dlq.read_entry(r) for r in dlq_records(kafka_bootstrap_servers, consumer.dlq_topic)
        ]
        assert [event_id(x.record) for x in letters] == [bad]
        assert letters[0].attempts == 3
        assert letters[0].error_type.startswith("unexpected:")
        assert letters[0].error_type == "unexpected:ValueError"
        assert bad in letters[0].error_message
        unexpected = [r for r in consumer.recorder.retries() if r.kind == "unexpected"]
        assert [r.attempt for r in unexpected] == [1, 2]


class TestGroupMembership:
    def test_two_members_split_the_partitions_and_a_leaving_member_loses_nothing(
        self, kafka_bootstrap_servers: str, topics: Topics, group_protocol: str
    ) -> None:
        """Two runners in one group split the 12 partitions between them, and when one stops the other takes over without losing a record (both group protocols)."""
        group = _group()
        settings = runner_settings(
            topics, kafka_bootstrap_servers, kafka={"group.protocol": group_protocol}
        )
        first_half = payment_records(topics, 120)
        second_half = payment_records(topics, 120)
        all_ids = {event_id(r) for r in first_half + second_half}
        partitions = {(t, p) for t in topics.payment_topics for p in range(3)}

        with (
            ObservedRunner(_accept, settings, group=group, name="member-a") as a,
            ObservedRunner(_accept, settings, group=group, name="member-b") as b,
        ):
            wait_until(
                lambda: (
                    a.recorder.assignment()
                    and b.recorder.assignment()
                    and len(a.recorder.assignment() | b.recorder.assignment()) == 12
                ),
                TIMEOUT_S,
                "both members to hold partitions and all 12 to be assigned",
            )
            split = (a.recorder.assignment(), b.recorder.assignment())
            produce(kafka_bootstrap_servers, first_half)
            wait_until(
                lambda: {event_id(r) for r in first_half} <= _handled_by(a, b),
                TIMEOUT_S,
                "the first half to be handled by the two members",
            )
            a.stop()
            wait_until(
                lambda: len(b.recorder.assignment()) == 12,
                TIMEOUT_S,
                "the remaining member to take every partition",
            )
            produce(kafka_bootstrap_servers, second_half)
            wait_until(
                lambda: all_ids <= _handled_by(a, b),
                TIMEOUT_S,
                "every record to be handled",
            )
            b.stop()

        assert split[0], "member a held no partition while both were in the group"
        assert split[1], "member b held no partition while both were in the group"
        assert not split[0] & split[1]
        assert {tuple(tp) for tp in split[0] | split[1]} == partitions
        assert a.recorder.handled_ids()
        assert b.recorder.handled_ids()
        taken_over = {event_id(r) for r in second_half}
        assert taken_over <= set(b.recorder.handled_ids())
        assert a.recorder.dead_lettered() == b.recorder.dead_lettered() == []

    def test_partitions_moved_to_a_joining_member_are_committed_on_revoke(
        self, kafka_bootstrap_servers: str, topics: Topics, group_protocol: str
    ) -> None:
        """With periodic commits off, a member that loses partitions to a joining member commits them on revoke, so the newcomer handles none of their records again (both group protocols)."""
        group = _group()
        settings = runner_settings(
            topics,
            kafka_bootstrap_servers,
            kafka={"group.protocol": group_protocol, "enable.auto.commit": "false"},
        )
        records = payment_records(topics, 120)
        produce(kafka_bootstrap_servers, records)
        wanted = {event_id(r) for r in records}
        with ObservedRunner(_accept, settings, group=group, name="member-a") as a:
            wait_until(
                lambda: wanted <= set(a.recorder.handled_ids()),
                TIMEOUT_S,
                "the first member to handle every record",
            )
            with ObservedRunner(_accept, settings, group=group, name="member-b") as b:
                wait_until(
                    lambda: b.recorder.assignment() and len(a.recorder.assignment()) < 12,
                    TIMEOUT_S,
                    "the newcomer to be given partitions taken from the first member",
                )
                moved = b.recorder.assignment()
                extra = payment_records(topics, 80)  # over all four topics, so some reach b
                produce(kafka_bootstrap_servers, extra)
                more = {event_id(r) for r in extra}
                wait_until(
                    lambda: more <= _handled_by(a, b),
                    TIMEOUT_S,
                    "the records produced after the split to be handled",
                )
                b.stop()
            a.stop()

        assert moved
        handled_by_b = set(b.recorder.handled_ids())
        assert not handled_by_b & wanted, "records committed on revoke were handled again"
        assert handled_by_b, "the newcomer handled nothing on the partitions it was given"
        assert a.recorder.dead_lettered() == b.recorder.dead_lettered() == []

    def test_a_partition_revoked_while_paused_is_consumed_when_assigned_back(
        self, kafka_bootstrap_servers: str, topics: Topics, group_protocol: str
    ) -> None:
        """A partition taken away while its member waited out a retry, paused, and given back
        later is read again: librdkafka keeps a partition's pause across revoke and reassign,
        so a pause the loop no longer tracks must not outlive it (both group protocols).

        Found by the short network chaos run: a notification member retrying with its
        partitions paused lost them in the cut, resumed only what it still held, got them
        back paused, and read nothing more from them.
        """
        group = _group()
        settings = runner_settings(
            topics, kafka_bootstrap_servers, kafka={"group.protocol": group_protocol}
        )
        healthy = threading.Event()

        def handle_when_healthy(batch: Sequence[Inbound]) -> None:
            if not healthy.is_set():
                raise TransientError("the database is down")

        before = payment_records(topics, 60)
        after = payment_records(topics, 60)
        with ObservedRunner(handle_when_healthy, settings, group=group, name="member-a") as a:
            wait_until(lambda: len(a.recorder.assignment()) == 12, TIMEOUT_S, "a to hold all 12")
            produce(kafka_bootstrap_servers, before)
            wait_until(
                lambda: len(a.recorder.retries()) >= 1,
                TIMEOUT_S,
                "a to retry with its partitions paused",
                abort=lambda: _why_not_retrying(a),
            )
            with ObservedRunner(_accept, settings, group=group, name="member-b") as b:
                wait_until(
                    lambda: b.recorder.assignment() and len(a.recorder.assignment()) < 12,
                    TIMEOUT_S,
                    "b to be given partitions revoked from a while a was paused",
                )
                moved = b.recorder.assignment()
                healthy.set()
                wait_until(
                    lambda: {event_id(r) for r in before} <= _handled_by(a, b),
                    TIMEOUT_S,
                    "the first records to be handled by a and b",
                )
                b.stop()
            wait_until(
                lambda: len(a.recorder.assignment()) == 12,
                TIMEOUT_S,
                "a to get every partition back",
            )
            produce(kafka_bootstrap_servers, after)
            wanted = {event_id(r) for r in after}
            wait_until(
                lambda: wanted <= set(a.recorder.handled_ids()),
                TIMEOUT_S,
                f"a to handle the records produced to the {len(moved)} partitions it got back",
            )
            a.stop()

        assert moved
        assert a.recorder.dead_lettered() == b.recorder.dead_lettered() == []


class TestFatalClientErrors:
    def test_a_member_fenced_by_a_second_instance_with_its_group_instance_id_stops_naming_the_cause(
        self, kafka_bootstrap_servers: str, topics: Topics
    ) -> None:
        """Two runners with one group.instance.id (classic protocol): the fenced first one's loop ends with FatalClientError(FENCED_INSTANCE_ID) and one fatal ConsumerError, instead of living on with every commit failing (issue 22, finding 4)."""
        ended, survivor = self._two_static_members(kafka_bootstrap_servers, topics, "classic")

        assert ended == "first", f"the {ended} member's loop ended"
        self._assert_ended_naming(survivor, "FENCED_INSTANCE_ID")

    def test_a_second_member_refused_its_group_instance_id_under_kip_848_stops_naming_the_cause(
        self, kafka_bootstrap_servers: str, topics: Topics, broker_choice: BrokerChoice
    ) -> None:
        """Under group.protocol=consumer the broker refuses the newcomer instead (UNRELEASED_INSTANCE_ID, fatal): its loop ends naming that, rather than waiting for an assignment forever (issue 22, finding 4)."""
        if broker_choice.kind == "tansu":
            pytest.skip(
                f"group.protocol=consumer needs Apache Kafka 4.x; {broker_choice.describe()}"
            )
        ended, survivor = self._two_static_members(kafka_bootstrap_servers, topics, "consumer")

        assert ended == "second", f"the {ended} member's loop ended"
        self._assert_ended_naming(survivor, "UNRELEASED_INSTANCE_ID")

    @staticmethod
    def _two_static_members(
        bootstrap: str, topics: Topics, protocol: str
    ) -> tuple[str, ObservedRunner]:
        """Start a static member, then a second with its group.instance.id; returns which
        one's loop ended, and that one."""
        settings = runner_settings(
            topics,
            bootstrap,
            kafka={"group.protocol": protocol, "group.instance.id": f"static-{_group()}"},
        )
        group = _group()
        first = ObservedRunner(_accept, settings, group=group, name="first").start()
        second = ObservedRunner(_accept, settings, group=group, name="second")
        try:
            wait_until(
                lambda: len(first.recorder.assignment()) == 12,
                TIMEOUT_S,
                "the first static member to hold every partition",
                abort=first.died,
            )
            second.start()
            wait_until(
                lambda: not first.alive or not second.alive,
                TIMEOUT_S,
                "one of the two members' loop to end",
            )
        finally:
            for member in (first, second):
                with contextlib.suppress(FatalClientError, RuntimeError):
                    member.stop()
        return ("first", first) if not first.alive and first.error else ("second", second)

    @staticmethod
    def _assert_ended_naming(member: ObservedRunner, code: str) -> None:
        assert isinstance(member.error, FatalClientError), member.error
        assert member.error.code == code
        [fatal] = [e for e in member.recorder.of(ConsumerError) if e.fatal]
        assert fatal.code == code


class TestMissingTopics:
    def test_a_subscribed_topic_that_does_not_exist_is_reported_and_picked_up_once_created(
        self, kafka_bootstrap_servers: str
    ) -> None:
        """A runner subscribed to topics that do not exist emits TopicMissing without crashing and handles a record once the topics are created."""
        missing = Topics(prefix=f"m{uuid.uuid4().hex[:8]}-")
        settings = runner_settings(
            missing,
            kafka_bootstrap_servers,
            kafka={"topic.metadata.refresh.interval.ms": "500"},
        )
        with ObservedRunner(_accept, settings, group=_group()) as consumer:
            wait_until(
                lambda: consumer.recorder.of(TopicMissing), TIMEOUT_S, "a TopicMissing event"
            )
            assert consumer.alive
            assert {e.topic for e in consumer.recorder.of(TopicMissing)} <= set(
                missing.payment_topics
            )
            create_topics(kafka_bootstrap_servers, missing.payment_topics, partitions=3)
            record = payment_record(missing, "payment.refunded")
            produce(kafka_bootstrap_servers, [record])
            wait_until(
                lambda: event_id(record) in consumer.recorder.handled_ids(),
                TIMEOUT_S,
                "the record on the newly created topic to be handled",
            )
            assert consumer.stop() == "stop requested"
