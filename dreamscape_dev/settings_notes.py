"""The hand-written parts of docs/settings.md, which `settings_doc` joins to what it reads from the code.

Two kinds. `MEANINGS` says what a field means when its settings class does not: a
docstring under the field (or a pydantic `description`) always wins, and `settings_doc`
refuses an entry no field needs any more, so each meaning is written in one place. The
sections (`KAFKA`, `KAFKA_DEFAULTS`, `FROM_FILES`, `TRACING`, `TOOLING`) describe what the environment holds
beyond the settings classes' fields: librdkafka properties, secrets from files, the
OpenTelemetry SDK's `OTEL_*`, the tooling's own variables. Links are relative to docs/.
"""

from __future__ import annotations

from typing import Final

MEANINGS: Final[dict[str, str]] = {
    # RunnerSettings (common/settings.py)
    "DATABASE_URL": "SQLAlchemy URL of the service's database: `postgresql://user:pass@host:5432/db` "
    "uses psycopg 3; unset, the service's SQLite file under `data/` (its section below). One "
    "database per service.",
    "DB_MIGRATE_ON_START": "apply the service's pending schema migrations at start-up (under a "
    "lock, so instances starting together do not race). `false`: only check that the schema "
    "is current and exit 2 if not; run `<service> migrate` first "
    "([schema migrations](operations.md#schema-migrations)).",
    "DB_START_TIMEOUT_SECONDS": "how long start-up waits, with backoff, for a database that "
    "refuses connections before exiting 1 (a supervisor restarts it).",
    "HTTP_HOST": "interface the health server binds (`127.0.0.1` keeps it on loopback); it "
    "answers a request within 5 s or drops it, and serves at most 16 connections at once (503 "
    "beyond). Why all interfaces by default: [health endpoints](operations.md#health-endpoints).",
    "HTTP_PORT": "port of `/healthz`, `/readyz` and `/metrics`; `0` picks a free port (logged "
    "in `service.started`; the image's HEALTHCHECK then cannot find it).",
    "LOG_LEVEL": "`DEBUG` adds one line per handled record.",
    "LOG_FORMAT": "unset: JSON lines off a TTY, the console format on one. Containers should "
    "say `json`.",
    "TOPIC_PREFIX": "prefix of every topic name (payment and DLQ topics), to share a cluster "
    "between deployments.",
    "DLQ_TOPIC": "the dead-letter topic; unset, `dreamscape.dlq.<group>`.",
    "BATCH_SIZE": "most records per poll, handed to the handler as one batch. A poll takes "
    "what has arrived and never waits for a batch to fill: below full load a batch is what "
    "came in while the one before was handled.",
    "MAX_RECORDS_PER_CALL": "most records handed to the handler in one call; a larger batch is "
    "handed over in several calls, the loop beating liveness between them and polling "
    "(partitions paused) once `CALL_POLL_INTERVAL_SECONDS` have passed since its last poll, "
    "so a slow dependency cannot run out `LIVENESS_TIMEOUT_SECONDS` or `max.poll.interval.ms` "
    "(300 s).",
    "POLL_TIMEOUT_SECONDS": "longest wait of one poll for a first record when none has "
    "arrived; it ends as soon as one does.",
    "SHUTDOWN_TIMEOUT_SECONDS": "longest graceful stop after SIGTERM; past it the process exits "
    "1 without the final commit. Give the orchestrator a longer grace period (compose: "
    "`stop_grace_period: 30s`).",
    "MAX_ATTEMPTS": "tries of a record failing with an unexpected error (a bug) before it is "
    "dead-lettered.",
    "RETRY_INITIAL_SECONDS": "first backoff between retries; it doubles, with jitter.",
    "RETRY_MAX_SECONDS": "longest backoff between retries.",
    "LIVENESS_TIMEOUT_SECONDS": "`/healthz` answers 503 when the run loop has not turned for "
    "this long.",
    "MAX_CLOCK_SKEW_SECONDS": "an event whose `timestamp` or payload time is later than the "
    "consumer's clock plus this is `invalid_value` (dead-lettered); times before 2000-01-01 "
    "always are.",
    # NotificationSettings (notification_consumer/settings.py)
    "SMTP_HOST": "the SMTP server (relay).",
    "SMTP_PORT": "its port.",
    "SMTP_USERNAME": "log in (AUTH) when set.",
    "SMTP_PASSWORD": "the password for `SMTP_USERNAME` (never logged).",
    "SMTP_STARTTLS": "upgrade the connection with STARTTLS (certificate verified).",
    "SMTP_SSL": "implicit TLS (port 465 style); exclusive with `SMTP_STARTTLS`.",
    "SMTP_TIMEOUT_SECONDS": "connect and reply timeout.",
    "RECIPIENT_EMAIL_TEMPLATE": "address of users without a `user_contact` row, with "
    "`{user_id}` (`{user_id}@example.test`); unset, such users are undeliverable.",
    "NOTIFICATION_TEMPLATE_DIR": "directory whose templates override the packaged ones "
    "([templates](notification.md#templates)).",
    "DEFAULT_LOCALE": "locale of recipients without a usable one.",
    "DISPLAY_TIMEZONE": "IANA time zone of the dates in emails.",
    "MESSAGE_ID_DOMAIN": "right-hand side of every Message-ID (derived from the eventId).",
    # AnalyticsSettings (analytics_consumer/settings.py)
    "ALERT_FAILURE_RATE_PERCENT": "failure rate above which `high_failure_rate` is raised.",
    "ALERT_FAILURE_MIN_INITIATED": "initiated payments needed before the failure rate is judged.",
    "ALERT_REFUND_RATE_PERCENT": "refund rate above which `high_refund_rate` is raised.",
    "ALERT_REFUND_MIN_COMPLETED": "completed payments needed before the refund rate is judged.",
    "ALERT_PROCESSING_DELAY_SECONDS": "initiated → outcome longer than this raises "
    "`processing_delay`.",
    "ALERT_AMOUNT_MIN_SAMPLES": "completed payments of a currency needed before the median "
    "rule applies to it.",
    "ALERT_GATEWAY_MIN_OUTCOMES": "outcomes needed in the window before `gateway_unavailable` "
    "is judged.",
}
"""Meaning of each variable whose field has neither a docstring nor a description."""

KAFKA: Final = """\
Every `KAFKA_<PROPERTY>` variable becomes the librdkafka property with the prefix dropped,
lower-cased and `_` turned into `.` (`KAFKA_SESSION_TIMEOUT_MS=6000` →
`session.timeout.ms=6000`); librdkafka rejects a misspelt one at start-up (exit 2). The DLQ
producer gets every property that is not consumer-only (connection, security,
`client.id`...), and the `dreamscape` CLI the connection and security ones
(`bootstrap.servers`, `security.*`, `sasl.*`, `ssl.*`, `client.*`); connecting to a secured
cluster is in [security.md](security.md).

`KAFKA_GROUP_ID` is every service's consumer group (each section above gives the service's
default); its DLQ is `dreamscape.dlq.<group>`, and an inbox keyed by consumer uses it too.
`KAFKA_GROUP_PROTOCOL` is `classic` (the default) or `consumer` (KIP-848, Apache Kafka 4.0+);
under `consumer` the runtime leaves out the classic-only `partition.assignment.strategy`,
`session.timeout.ms` and `heartbeat.interval.ms`. Which to choose:
[brokers.md](brokers.md#which-consumer-group-protocol).
"""
"""Before the runtime's Kafka defaults (generated from `common.settings`)."""

KAFKA_DEFAULTS: Final = """\
`auto.offset.reset=earliest`: a new group reads the topics' history rather than skipping
payments published before it first started. Auto commit commits only the offsets the loop
stored, which it does once a record's outcome is durable, so `enable.auto.offset.store` stays
`false`. `statistics.interval.ms` feeds consumer lag to `/metrics`, and
`topic.metadata.refresh.interval.ms` bounds how long a topic or partition created after start
takes to be seen. The DLQ producer waits for every in-sync replica, idempotently.
"""
"""After the runtime's Kafka defaults: why they are what they are."""

FROM_FILES: Final = """\
The Kafka secret properties can come from files the same way: `KAFKA_<PROPERTY>_FILE` for a
property whose name holds `password`, `secret` or `passphrase`, a private key in PEM or
`sasl.oauthbearer.config` (`KAFKA_SASL_PASSWORD_FILE`, `KAFKA_SSL_KEY_PASSWORD_FILE`,
`KAFKA_SSL_KEYSTORE_PASSWORD_FILE`, `KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET_FILE`,
`KAFKA_SSL_KEY_PEM_FILE`...). Other properties ending in `.file`
(`KAFKA_SASL_OAUTHBEARER_ASSERTION_FILE`) stay properties. The file's content is the value,
one trailing newline dropped; setting both `X` and `X_FILE` exits 2, as does a file that
cannot be read (naming the variable and the path). Secrets never render: the Kafka secret
properties, the database password and the SMTP password are masked in every log line, `repr`
and traceback ([security.md](security.md#secrets-from-files)).
"""
"""After the generated list of `<VARIABLE>_FILE` variables."""

TRACING: Final = """\
Tracing is off unless these ask for it, and needs the `tracing` extra (the image has it);
what the spans hold is in [operations.md](operations.md#tracing). These are the OpenTelemetry
SDK's own names and meanings: `common/tracing.py` reads `OTEL_TRACES_EXPORTER`, the two
endpoints, `OTEL_SDK_DISABLED` and `OTEL_SERVICE_NAME` itself, the SDK all of them.

| variable | effect |
|---|---|
| `OTEL_TRACES_EXPORTER` | `otlp` or `console` (or both, comma-separated) turns tracing on; `none` keeps it off whatever else is set |
| `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | where OTLP goes, over HTTP/protobuf (`http://jaeger:4318`); either one alone turns tracing on with the `otlp` exporter. gRPC is not shipped: `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` is not honoured |
| `OTEL_SDK_DISABLED` | `true`: off, whatever else is set |
| `OTEL_SERVICE_NAME` | the service name in the backend; by default the service's own (`voyage-consumer`, `notification-consumer`, `analytics-consumer`) |
| `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | the SDK's sampler, `parentbased_always_on` by default; `parentbased_traceidratio` with `0.1` keeps a tenth of the new traces and follows the producer's decision for the others |
| `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_HEADERS`... | read by the SDK as usual (spans are exported in the background by its batch processor) |
"""

TOOLING: Final = """\
The `dreamscape` command reads the same `KAFKA_*` variables and `TOPIC_PREFIX` as the
services. The test suite's own variables (`KAFKA_BOOTSTRAP_SERVERS` for an existing broker,
`TEST_BROKER`, `TEST_DATABASE_URL`, `REQUIRE_POSTGRES`, `REQUIRE_TOOLS`, `REQUIRE_KAFKA`) are
in [testing.md](testing.md).
"""
