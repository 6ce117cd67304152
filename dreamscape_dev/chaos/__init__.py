"""The fault suite: a sustained stream, faults on a schedule, and a checker of every effect.

`python -m dreamscape_dev.chaos` (`make chaos`) runs the three services as real processes,
two instances each, on PostgreSQL and a three-broker Apache Kafka cluster, while
`scenarios` kills instances and brokers, cuts the network, the database and the SMTP
server, scales the groups and feeds poison; `checker` then compares every booking, email,
analytics figure and dead letter with what was published. See docs/chaos.md.
"""
