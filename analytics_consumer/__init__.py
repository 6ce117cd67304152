"""The analytics consumer: exact payment metrics and alerts, exactly once, on shared storage.

Reads the four payment topics through `common`'s run loop, keeps counters, per-payment
facts and its Kafka positions in one database (SQLite or PostgreSQL) written in one
transaction per batch, and serves the figures as Prometheus gauges, a report, a dashboard
and a reconciliation against the gateway. See docs/analytics.md.

Modules: the layout every service shares (`domain` the pure delta of a batch, `tables`,
`store` the exactly-once write path, `handler`, `settings`, `service`, `cli`), then what is
analytics' own: `offsets`, `audit`/`audit_trail`, `monitor`/`alerts`/`gauges`, `reading`,
`report`/`dashboard`/`charts`, `reconcile`/`reconciliation_runs`.
"""
