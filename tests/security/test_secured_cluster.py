"""The three services and the DLQ tools on SASL_SSL with least-privilege ACLs (issue 22).

One secured broker for the session and one fleet for the module (`conftest.fleet`); a test
that takes a permission away starts a service of its own on fresh topics, as a user of its
own where it matters that the user may write nowhere else, so the fleet keeps its ACLs.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from common.acls import Acl, dlq_reader_acls, dlq_replayer_acls, service_acls
from common.dlq import DeadLetter, to_dlq_record
from common.records import OutboundRecord, Record, TopicPartition
from common.topics import GROUP_VOYAGE, PAYMENT_INITIATED, Topics
from dreamscape_dev.testing import builders
from dreamscape_dev.testing.broker import SecuredBroker
from dreamscape_dev.testing.running import wait_until
from tests.deploy.observability import metrics_port
from tests.integration.helpers import ServiceProcess, readyz, service_process
from tests.security.secured import (
    TIMEOUT_S,
    SecuredFleet,
    committed,
    dreamscape,
    fresh_names,
    produce,
    records_of,
    service_env,
    wait_committed,
)

pytestmark = pytest.mark.integration


def poison(topics: Topics) -> OutboundRecord:
    return OutboundRecord(topics.for_event(PAYMENT_INITIATED), b"poison", b"not json")


def without(acls: list[Acl], resource_name: str, operation: str) -> list[Acl]:
    return [a for a in acls if (a.resource_name, a.operation) != (resource_name, operation)]


def says(service: ServiceProcess, *words: str) -> bool:
    """Whether one line of the service's output holds every word (case-insensitive)."""
    lines = service.output.read_text(errors="replace").lower().splitlines()
    return any(all(word.lower() in line for word in words) for line in lines)


def nothing_committed(broker: SecuredBroker, group: str, ends: dict[TopicPartition, int]) -> bool:
    return all(offset < 0 for offset in committed(broker, group, list(ends)).values())


def not_ready(**failing: str) -> dict[str, Any]:
    """The /readyz body of a voyage whose `failing` checks say so and every other is ok."""
    checks = {"partitions_assigned": "ok", "processing": "ok", "client": "ok", "dlq_path": "ok"}
    return {"ready": False, "checks": {**checks, "database": "ok", **failing}}


def voyage(
    broker: SecuredBroker, topics: Topics, group: str, directory: Path, **values: str
) -> AbstractContextManager[ServiceProcess]:
    """voyage as the `voyage` user on fresh topics, started by the caller's `with`."""
    return service_process(
        "voyage_consumer",
        service_env(broker, topics, "voyage_consumer", group, directory, **values),
        directory,
    )


class TestLeastPrivilege:
    def test_the_spec_examples_end_right_and_the_poison_is_dead_lettered(
        self, fleet: SecuredFleet
    ) -> None:
        """With only its own ACLs each service applies the spec's four examples and dead-letters the poison record, logging no password."""
        fleet.publish([*builders.spec_records(fleet.topics), poison(fleet.topics)])

        engine = create_engine(fleet.database("voyage_consumer"))
        try:
            with engine.connect() as connection:
                booking = connection.execute(
                    text("SELECT status FROM booking WHERE booking_id = 'booking_456def'")
                ).scalar_one()
        finally:
            engine.dispose()
        assert booking == "cancelled"
        # The failure email depends on whether the failure is handled before the completion
        # (they travel on two topics); the receipt and the refund do not.
        subjects = {str(m.message["Subject"]) for m in fleet.smtp.messages}
        assert {
            "Payment receipt: €1,250.00 for booking booking_456def",
            "Refund of €1,250.00 for booking booking_456def",
        } <= subjects
        for module, group in fleet.groups.items():
            letters = records_of(fleet.broker, fleet.topics.dlq(group))
            assert [r.value for r in letters] == [b"not json"], module
        passwords = list(fleet.broker.security.users.values())
        for module, service in fleet.services.items():
            output = service.output.read_text(errors="replace")
            assert not [p for p in passwords if p in output], f"{module} logged a password"

    def test_a_service_authenticated_by_its_client_certificate_needs_the_same_acls(
        self, secured_kafka: SecuredBroker, tmp_path: Path
    ) -> None:
        """voyage on the mTLS listener, its principal its certificate's CN, applies the spec's examples and dead-letters the poison with `service_acls` alone."""
        topics, suffix = fresh_names()
        group = f"{GROUP_VOYAGE}-{suffix}"
        secured_kafka.create_topics([*topics.payment_topics, topics.dlq(group)])
        secured_kafka.grant(service_acls("User:voyage-mtls", group, topics))
        ends = produce(secured_kafka, [*builders.spec_records(topics), poison(topics)])
        env = service_env(secured_kafka, topics, "voyage_consumer", group, tmp_path)
        env = {k: v for k, v in env.items() if not k.startswith(("KAFKA_SASL_", "KAFKA_SECURITY"))}
        env.update(secured_kafka.mtls_env("voyage-mtls"))
        with service_process("voyage_consumer", env, tmp_path) as service:
            wait_committed(secured_kafka, group, ends, service.died)
        assert [r.value for r in records_of(secured_kafka, topics.dlq(group))] == [b"not json"]


class TestMissingPermissions:
    def test_a_wrong_password_skips_nothing_and_the_service_says_why(
        self, secured_kafka: SecuredBroker, tmp_path: Path
    ) -> None:
        """Refused credentials leave every offset uncommitted while the service keeps running, its log and /readyz naming the authentication failure, never the password."""
        topics, suffix = fresh_names()
        group = f"{GROUP_VOYAGE}-{suffix}"
        secured_kafka.create_topics([*topics.payment_topics, topics.dlq(group)])
        secured_kafka.grant(service_acls("User:voyage", group, topics))
        ends = produce(secured_kafka, builders.spec_records(topics))
        wrong = f"wrong-{suffix}"
        with voyage(
            secured_kafka, topics, group, tmp_path, KAFKA_SASL_PASSWORD=wrong, LOG_LEVEL="INFO"
        ) as service:
            wait_until(
                lambda: says(service, "authentication failed", "invalid credentials"),
                TIMEOUT_S,
                "the authentication failure in the log",
                abort=service.died,
            )
            port = metrics_port(service)
            cause = "waiting for assignment: authentication failed"
            wait_until(
                lambda: readyz(port)[1]["checks"]["partitions_assigned"] == cause,
                TIMEOUT_S,
                "/readyz to name the authentication failure",
                abort=service.died,
            )
            assert service.died() is None
        assert nothing_committed(secured_kafka, group, ends)
        assert wrong not in service.output.read_text(errors="replace")

    def test_a_missing_group_acl_is_a_named_outage_that_ends_when_granted(
        self, secured_kafka: SecuredBroker, tmp_path: Path
    ) -> None:
        """Without READ on its group voyage commits nothing, its log and /readyz naming the authorization failure; granted, it handles everything."""
        topics, suffix = fresh_names()
        group = f"{GROUP_VOYAGE}-{suffix}"
        secured_kafka.create_topics([*topics.payment_topics, topics.dlq(group)])
        acls = service_acls("User:voyage", group, topics)
        secured_kafka.grant(without(acls, group, "READ"))
        ends = produce(secured_kafka, [*builders.spec_records(topics), poison(topics)])
        with voyage(secured_kafka, topics, group, tmp_path, LOG_LEVEL="INFO") as service:
            wait_until(
                lambda: says(service, "group authorization failed"),
                TIMEOUT_S,
                "the group authorization failure in the log",
                abort=service.died,
            )
            port = metrics_port(service)
            cause = "waiting for assignment: authorization failed"
            wait_until(
                lambda: readyz(port)[1]["checks"]["partitions_assigned"] == cause,
                TIMEOUT_S,
                "/readyz to name the authorization failure",
                abort=service.died,
            )
            assert nothing_committed(secured_kafka, group, ends)
            secured_kafka.grant(acls)
            wait_committed(secured_kafka, group, ends, service.died)
        assert [r.value for r in records_of(secured_kafka, topics.dlq(group))] == [b"not json"]

    def test_no_write_on_the_dlq_ends_the_process_naming_authorization(
        self, secured_kafka: SecuredBroker, tmp_path: Path
    ) -> None:
        """A user that may write nowhere gets no producer id: voyage exits non-zero with a line naming authorization and the poison is not skipped."""
        topics, suffix = fresh_names()
        group = f"{GROUP_VOYAGE}-{suffix}"
        user = f"voyage-{suffix}"
        secured_kafka.add_user(user)
        secured_kafka.create_topics([*topics.payment_topics, topics.dlq(group)])
        secured_kafka.grant(
            without(service_acls(f"User:{user}", group, topics), topics.dlq(group), "WRITE")
        )
        ends = produce(secured_kafka, [poison(topics)])
        env = service_env(secured_kafka, topics, "voyage_consumer", group, tmp_path)
        env.update(secured_kafka.env(user))
        with service_process("voyage_consumer", env, tmp_path) as service:
            code = service.wait(TIMEOUT_S)
        assert code != 0
        assert says(service, '"fatal": true', "authorization failed"), service.tail()
        assert nothing_committed(secured_kafka, group, ends)
        assert records_of(secured_kafka, topics.dlq(group)) == []

    def test_readiness_names_the_missing_dlq_write_before_any_poison_arrives(
        self, secured_kafka: SecuredBroker, tmp_path: Path
    ) -> None:
        """A user that may write elsewhere but not to its DLQ runs not ready: /readyz says the WRITE is missing, the log names the topic."""
        topics, suffix = fresh_names()
        group = f"{GROUP_VOYAGE}-{suffix}"
        user = f"voyage-{suffix}"
        secured_kafka.add_user(user)
        elsewhere = f"{topics.prefix}elsewhere"  # a producer id needs WRITE on some topic
        secured_kafka.create_topics([*topics.payment_topics, topics.dlq(group), elsewhere])
        acls = without(service_acls(f"User:{user}", group, topics), topics.dlq(group), "WRITE")
        secured_kafka.grant([*acls, Acl(f"User:{user}", "TOPIC", elsewhere, "WRITE")])
        env = service_env(
            secured_kafka, topics, "voyage_consumer", group, tmp_path, LOG_LEVEL="INFO"
        )
        env.update(secured_kafka.env(user))
        with service_process("voyage_consumer", env, tmp_path) as service:
            port = metrics_port(service)
            wait_until(
                lambda: readyz(port) == (503, not_ready(dlq_path="authorization failed: no WRITE")),
                TIMEOUT_S,
                "/readyz to name the missing WRITE",
                abort=service.died,
            )
            assert says(
                service, "dlq_path.failing", f"no WRITE permission on DLQ topic {topics.dlq(group)}"
            )

    def test_a_revoked_dlq_write_holds_the_poison_until_granted_again(
        self, secured_kafka: SecuredBroker, tmp_path: Path
    ) -> None:
        """With WRITE on its DLQ revoked, the poison record is retried with the authorization failure named, then dead-lettered once granted."""
        topics, suffix = fresh_names()
        group = f"{GROUP_VOYAGE}-{suffix}"
        secured_kafka.create_topics([*topics.payment_topics, topics.dlq(group)])
        acls = service_acls("User:voyage", group, topics)
        secured_kafka.grant(acls)
        with voyage(secured_kafka, topics, group, tmp_path) as service:
            wait_committed(
                secured_kafka,
                group,
                produce(secured_kafka, builders.spec_records(topics)),
                service.died,
            )
            dlq_write = [
                a for a in acls if (a.resource_name, a.operation) == (topics.dlq(group), "WRITE")
            ]
            secured_kafka.revoke(dlq_write)
            ends = produce(secured_kafka, [poison(topics)])
            wait_until(
                lambda: says(service, "retry", "topic authorization failed"),
                TIMEOUT_S,
                "the DLQ authorization failure in a retry line",
                abort=service.died,
            )
            (tp,) = ends
            assert committed(secured_kafka, group, [tp])[tp] < ends[tp]
            secured_kafka.grant(dlq_write)
            wait_committed(secured_kafka, group, ends, service.died)
        assert [r.value for r in records_of(secured_kafka, topics.dlq(group))] == [b"not json"]


def a_letter(broker: SecuredBroker) -> tuple[Topics, str, Record]:
    """A DLQ topic of a fresh group holding one letter (written as admin), and the record."""
    topics, suffix = fresh_names()
    group = f"{GROUP_VOYAGE}-{suffix}"
    broker.create_topics([*topics.payment_topics, topics.dlq(group)])
    record = Record(topics.for_event(PAYMENT_INITIATED), 0, 7, b"k", b"not json", (), None)
    letter = DeadLetter(record, None, "not_json", "not JSON", 1)
    produce(
        broker,
        [
            to_dlq_record(
                letter, dlq_topic=topics.dlq(group), group=group, failed_at=datetime.now(UTC)
            )
        ],
    )
    return topics, group, record


class TestDlqTools:
    def test_dlq_list_reads_the_letters_with_read_on_the_dlq_topic(
        self, secured_kafka: SecuredBroker
    ) -> None:
        """An operator granted READ and DESCRIBE on a DLQ topic lists its letter."""
        topics, group, _ = a_letter(secured_kafka)
        secured_kafka.grant(dlq_reader_acls("User:operator", topics.dlq(group)))
        done = dreamscape(secured_kafka, "operator", "dlq", "list", "--topic", topics.dlq(group))
        assert done.returncode == 0, done.stderr
        assert f"1 record(s) in {topics.dlq(group)}" in done.stdout

    @pytest.mark.parametrize("user", ["voyage", "outsider"])
    def test_dlq_list_without_read_fails_with_one_line(
        self, secured_kafka: SecuredBroker, user: str
    ) -> None:
        """A user without READ on the DLQ topic (voyage may only write it, outsider nothing) gets one line naming authorization and a non-zero exit, never an empty list."""
        topics, group, _ = a_letter(secured_kafka)
        secured_kafka.grant(service_acls("User:voyage", group, topics))
        done = dreamscape(secured_kafka, user, "dlq", "list", "--topic", topics.dlq(group))
        assert done.returncode != 0
        assert "record(s)" not in done.stdout
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "authorization" in lines[0].lower()
        assert topics.dlq(group) in lines[0]

    def test_dlq_replay_sends_the_letter_back_with_the_replayer_acls(
        self, secured_kafka: SecuredBroker
    ) -> None:
        """An operator granted `dlq_replayer_acls` replays a letter onto its original topic."""
        topics, group, record = a_letter(secured_kafka)
        secured_kafka.grant(dlq_replayer_acls("User:operator", topics.dlq(group), topics))
        done = dreamscape(
            secured_kafka, "operator", "dlq", "replay", "--topic", topics.dlq(group), "--all"
        )
        assert done.returncode == 0, done.stderr
        assert "1 record(s) replayed" in done.stdout
        replayed = records_of(secured_kafka, record.topic)
        assert [(r.key, r.value) for r in replayed] == [(b"k", b"not json")]

    def test_dlq_list_with_a_wrong_password_fails_with_one_line(
        self, secured_kafka: SecuredBroker
    ) -> None:
        """Refused credentials end `dlq list` with one line naming the authentication failure (not the password) and a non-zero exit."""
        topics, group, _ = a_letter(secured_kafka)
        wrong = f"wrong-{group}"
        done = dreamscape(
            secured_kafka, "operator", "dlq", "list", "--topic", topics.dlq(group), password=wrong
        )
        assert done.returncode != 0
        assert "record(s)" not in done.stdout
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "authentication" in lines[0].lower()
        assert wrong not in done.stdout + done.stderr
