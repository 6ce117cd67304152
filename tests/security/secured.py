"""The services and the operators' tools as processes on the secured broker, each with its user.

Every test works on its own topic prefix and groups, and grants its users exactly the ACLs
`common.acls` says they need on those (or fewer, to show what a missing one does), so tests
sharing the session's secured broker never share a permission.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition

from common.acls import service_acls
from common.kafka import read_all
from common.records import OutboundRecord, Record, TopicPartition
from common.topics import GROUP_ANALYTICS, GROUP_NOTIFICATION, GROUP_VOYAGE, Topics
from dreamscape_dev.testing.broker import SecuredBroker
from dreamscape_dev.testing.running import wait_until
from dreamscape_dev.testing.smtp import SmtpSink
from tests.deploy.deployment import ROOT
from tests.integration.helpers import ServiceProcess, process_env, service_process

TIMEOUT_S: Final = 60.0

#: Each service's SCRAM user on the secured broker, and its default group.
USERS: Final = {
    "voyage_consumer": ("voyage", GROUP_VOYAGE),
    "notification_consumer": ("notification", GROUP_NOTIFICATION),
    "analytics_consumer": ("analytics", GROUP_ANALYTICS),
}


def fresh_names() -> tuple[Topics, str]:
    """A topic prefix and a group suffix of one's own."""
    return Topics(prefix=f"sec{uuid.uuid4().hex[:8]}-"), uuid.uuid4().hex[:8]


def produce(broker: SecuredBroker, records: Sequence[OutboundRecord]) -> dict[TopicPartition, int]:
    """Produce `records` as admin; per partition, the offset after the last one written."""
    producer = Producer({**broker.client_config(), "acks": "all", "linger.ms": 5})
    ends: dict[TopicPartition, int] = {}
    errors: list[str] = []

    def report(error: Any, message: Any) -> None:
        if error is not None:
            errors.append(str(error))
            return
        tp = TopicPartition(message.topic(), message.partition())
        ends[tp] = max(ends.get(tp, 0), message.offset() + 1)

    for record in records:
        producer.produce(
            record.topic, record.value, record.key, headers=list(record.headers) or None,
            on_delivery=report,
        )  # fmt: skip
    assert producer.flush(15) == 0, "records left undelivered"
    assert not errors, f"produce failed: {errors[:3]}"
    return ends


def committed(
    broker: SecuredBroker, group: str, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """The group's committed offsets, read as admin without joining (negative: none)."""
    consumer = Consumer({**broker.client_config(), "group.id": group})
    try:
        asked = [KafkaTopicPartition(tp.topic, tp.partition) for tp in partitions]
        return {
            TopicPartition(tp.topic, tp.partition): tp.offset
            for tp in consumer.committed(asked, timeout=10)
        }
    finally:
        consumer.close()


def wait_committed(
    broker: SecuredBroker,
    group: str,
    ends: Mapping[TopicPartition, int],
    abort: Callable[[], str | None],
) -> None:
    """Wait until `group` has committed up to `ends`."""

    def caught_up() -> bool:
        offsets = committed(broker, group, list(ends))
        return all(offsets[tp] >= end for tp, end in ends.items())

    wait_until(caught_up, TIMEOUT_S, f"{group} to commit {dict(ends)}", abort=abort)


def records_of(broker: SecuredBroker, topic: str) -> list[Record]:
    """Every record of `topic`, read as admin."""
    return read_all({**broker.client_config(), "fetch.wait.max.ms": "50"}, topic)


def service_env(
    broker: SecuredBroker, topics: Topics, module: str, group: str, directory: Path, **values: str
) -> dict[str, str]:
    """`module`'s environment: its own user, group and SQLite file, on the secured broker."""
    user = USERS[module][0]
    extra: dict[str, str] = {}
    if module == "notification_consumer":
        extra = {"MAIL_FROM": "DreamScape <no-reply@dreamscape.example>",
                 "PAYMENT_RETRY_URL": "https://dreamscape.example/pay/{booking_id}?p={payment_id}",
                 "RECIPIENT_EMAIL_TEMPLATE": "{user_id}@example.test"}  # fmt: skip
    elif module == "analytics_consumer":
        extra = {"ANALYTICS_REFRESH_SECONDS": "0"}
    values = {
        **broker.env(user),
        "KAFKA_GROUP_ID": group,
        "DATABASE_URL": f"sqlite:///{directory}/{group}.db",
        **extra,
        **values,
    }
    return process_env(broker.bootstrap_servers, topics, **values)


def dreamscape(
    broker: SecuredBroker, user: str, *args: str, password: str | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """`dreamscape ARGS` as `user` on the secured broker."""
    env = process_env(broker.bootstrap_servers, Topics(), **broker.env(user, password))
    return subprocess.run(
        [sys.executable, "-m", "common.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip


@dataclass
class SecuredFleet:
    """voyage, notification and analytics on private topics, each as its least-privilege user."""

    broker: SecuredBroker
    topics: Topics
    groups: dict[str, str]
    directory: Path
    services: dict[str, ServiceProcess]
    smtp: SmtpSink

    def publish(self, records: Sequence[OutboundRecord]) -> dict[TopicPartition, int]:
        """Produce `records`; return once every group has committed past them."""
        ends = produce(self.broker, records)
        for module, group in self.groups.items():
            wait_committed(self.broker, group, ends, self.services[module].died)
        return ends

    def database(self, module: str) -> str:
        return f"sqlite:///{self.directory}/{self.groups[module]}.db"


@contextmanager
def secured_fleet(broker: SecuredBroker, smtp: SmtpSink, directory: Path) -> Iterator[SecuredFleet]:
    """The three services, each granted `service_acls` for its group on fresh topics."""
    topics, suffix = fresh_names()
    groups = {module: f"{group}-{suffix}" for module, (_, group) in USERS.items()}
    broker.create_topics([*topics.payment_topics, *map(topics.dlq, groups.values())])
    broker.grant(
        [a for m, g in groups.items() for a in service_acls(f"User:{USERS[m][0]}", g, topics)]
    )
    smtp_env = {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port)}
    with ExitStack() as stack:
        services = {
            module: stack.enter_context(
                service_process(
                    module,
                    service_env(
                        broker,
                        topics,
                        module,
                        group,
                        directory,
                        **(smtp_env if module == "notification_consumer" else {}),
                    ),
                    directory,
                )
            )
            for module, group in groups.items()
        }
        yield SecuredFleet(broker, topics, groups, directory, services, smtp)
