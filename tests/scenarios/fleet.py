"""The three services as processes on the session's broker, and what each of them ended with.

A scenario plays a gateway's events through `Fleet.publish`, which returns once every
service's group has committed past them (so every effect of theirs is durable), then reads
the outcome the way an operator would: the booking from voyage's database, the emails from
the SMTP server, the figures from `analytics-consumer report --json`, files from the
analytics CLI. One fleet serves a whole module; each scenario uses its own ids and its own
UTC day, so scenarios never read one another's effects.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Final

from sqlalchemy import create_engine, text

from common.records import OutboundRecord
from common.topics import GROUP_ANALYTICS, GROUP_NOTIFICATION, GROUP_VOYAGE, Topics
from dreamscape_dev.testing import builders
from dreamscape_dev.testing.broker import create_topics
from dreamscape_dev.testing.smtp import SmtpSink
from tests.deploy.deployment import ROOT
from tests.deploy.observability import service_extras
from tests.integration.helpers import (
    ServiceProcess,
    next_offsets,
    process_env,
    produce,
    service_process,
    wait_committed,
)

MODULES: Final = ("voyage_consumer", "notification_consumer", "analytics_consumer")
Document = dict[str, Any]


@dataclass
class Fleet:
    """voyage, notification and analytics on private topics, each with its SQLite file."""

    bootstrap: str
    topics: Topics
    groups: dict[str, str]
    databases: dict[str, str]
    services: dict[str, ServiceProcess]
    smtp: SmtpSink

    def publish(self, documents: Sequence[Document]) -> None:
        """Produce `documents` in order, as the payment-service would, and wait until handled."""
        self.publish_records([builders.outbound(d, self.topics) for d in documents])

    def publish_records(self, records: Sequence[OutboundRecord]) -> None:
        """Produce `records`; return once every group has committed past all of them."""
        ends = next_offsets(produce(self.bootstrap, records))
        for module, group in self.groups.items():
            wait_committed(self.bootstrap, group, ends, abort=self.services[module].died)

    def booking(self, booking_id: str) -> dict[str, Any]:
        """voyage's stored booking row."""
        engine = create_engine(self.databases["voyage_consumer"])
        try:
            with engine.connect() as connection:
                row = connection.execute(
                    text("SELECT * FROM booking WHERE booking_id = :b"), {"b": booking_id}
                ).mappings()
                found = [dict(r) for r in row]
        finally:
            engine.dispose()
        assert found, f"voyage stored no booking {booking_id}"
        return found[0]

    def emails_to(self, address: str) -> list[EmailMessage]:
        """The emails the SMTP server received for `address`, in arrival order."""
        return [m.message for m in self.smtp.messages if address in m.rcpt_tos]

    def analytics(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`analytics-consumer ARGS` on analytics' database (the read-side tools)."""
        env = process_env(
            self.bootstrap, self.topics, DATABASE_URL=self.databases["analytics_consumer"]
        )
        return subprocess.run(
            [sys.executable, "-m", "analytics_consumer", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def report(self, day: str) -> dict[str, Any]:
        """`analytics-consumer report --json --day DAY`, parsed."""
        done = self.analytics("report", "--json", "--day", day)
        assert done.returncode == 0, done.stderr
        found: dict[str, Any] = json.loads(done.stdout)
        return found


def text_of(message: EmailMessage) -> str:
    """The plain-text part of an email."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "the email has no text part"
    return str(part.get_content())


@contextmanager
def fleet(bootstrap: str, smtp: SmtpSink, directory: Path) -> Iterator[Fleet]:
    """Start the three services on fresh topics; kill them on the way out."""
    topics = Topics(prefix=f"s{uuid.uuid4().hex[:8]}-")
    suffix = uuid.uuid4().hex[:8]
    groups = {
        "voyage_consumer": f"{GROUP_VOYAGE}-{suffix}",
        "notification_consumer": f"{GROUP_NOTIFICATION}-{suffix}",
        "analytics_consumer": f"{GROUP_ANALYTICS}-{suffix}",
    }
    create_topics(bootstrap, [*topics.payment_topics, *map(topics.dlq, groups.values())])
    databases = {module: f"sqlite:///{directory}/{module}.db" for module in MODULES}
    extra = service_extras(smtp)
    with ExitStack() as stack:
        services = {
            module: stack.enter_context(
                service_process(
                    module,
                    process_env(
                        bootstrap,
                        topics,
                        KAFKA_GROUP_ID=group,
                        DATABASE_URL=databases[module],
                        **extra.get(module, {}),
                    ),
                    directory,
                )
            )
            for module, group in groups.items()
        }
        yield Fleet(bootstrap, topics, groups, databases, services, smtp)
