"""`make demo`: the three services end to end on an embedded broker, with nothing but Python.

`python -m dreamscape_dev.demo` starts the embedded Kafka-compatible broker and an SMTP server that
files every email, runs voyage, notification and analytics as separate processes on fresh
SQLite databases, publishes a simulated stream (failures, retried bookings, full and partial
refunds, duplicates, cross-topic reordering, poison), shows each consumer group's lag draining,
stops the services with SIGTERM, and summarises what they made of it against the simulator's
expectations. Everything lands in `demo-output/` (index.html links it all).

Modules: `run` (the sequence), `orchestra` (service processes), `mailbox` (SMTP server),
`progress` (lag), `figures` (reading the
results), `checks` (verdicts), `summary` (tables and summary.json), `pages` (index.html),
`output` (the output directory).
"""
