"""The runtime's public API: what a consumer may import from `common`, module by module.

A consumer (the template's, the guide's, a team's) imports these names, from these modules,
and nothing else of `common`: every other module and name is internal and may change in
any release. For the listed ones the version says what changed (Semantic Versioning,
docs/api.md): removing one, or changing a signature so that a caller's code stops working,
is a breaking change, allowed only in a release that bumps MAJOR (MINOR while the version is
0.x). tests/packaging/test_api.py checks this against the previous release with griffe, and
that the generated consumers import nothing outside this list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

PUBLIC: Final[Mapping[str, tuple[str, ...]]] = {
    # the run loop: what a service hands it, and running it
    "common.handlers": ("ConsumerSpec", "per_event"),
    # what a handler raises or returns: the decision table's words (docs/architecture.md)
    "common.errors": (
        "CriticalError",
        "PermanentError",
        "RetryLater",
        "ShutdownRequested",
        "TransientError",
    ),
    "common.retry": ("until_durable",),
    "common.service": ("run_service",),
    "common.runner": ("Runner",),
    "common.settings": ("DatabaseURL", "RunnerSettings"),
    # events, records and topics
    "common.events": ("PaymentEvent", "PaymentRefunded"),
    "common.records": ("Inbound",),
    "common.topics": (
        "PAYMENT_COMPLETED",
        "PAYMENT_FAILED",
        "PAYMENT_INITIATED",
        "PAYMENT_REFUNDED",
        "Topics",
    ),
    # the database: engine, transactions, the inbox, tables and migrations
    "common.db": (
        "ProcessedEvent",
        "TRANSIENT_DB_ERRORS",
        "claim_events",
        "create_schema",
        "make_engine",
        "reachable",
        "table_of",
        "transaction",
    ),
    "common.business": ("BusinessAnomaly", "BusinessMetrics", "Claimed", "MODELS", "claim_facts"),
    "common.bulk": ("encoders", "insert_rows"),
    "common.columns": ("Money", "UtcDateTime"),
    "common.schema": (
        "Schema",
        "add_migrate_command",
        "connect",
        "downgrade",
        "open_database",
        "run_migrate_command",
    ),
    # logging, lifecycle events, and the Kafka clients a service's tests drive
    "common.logs": ("record_context",),
    "common.lifecycle": ("Bus", "LifecycleEvent", "RecordDeadLettered"),
    "common.kafka": ("KafkaConsumer", "KafkaProducer"),
}
"""Module -> the names a consumer may import from it."""
