#!/bin/sh
# Creates the topics named as arguments (idempotent: --if-not-exists), then prints each
# topic's summary line (name, partition count, replication factor).
# Run by compose.yaml's one-shot `topics` service in the apache/kafka image:
#   BOOTSTRAP_SERVERS=kafka:9092 PARTITIONS=6 REPLICATION_FACTOR=1 create-topics.sh TOPIC...
# An existing topic keeps its partition count; adding partitions is a deliberate act
# (docs/operations.md, "Scaling and partitions").
set -eu
: "${BOOTSTRAP_SERVERS:?}" "${PARTITIONS:?}" "${REPLICATION_FACTOR:?}"
[ "$#" -gt 0 ] || { echo "usage: create-topics.sh TOPIC..." >&2; exit 2; }
TOPICS_TOOL="${TOPICS_TOOL:-/opt/kafka/bin/kafka-topics.sh}" # tests/deploy swap in a stub

for topic in "$@"; do
  "$TOPICS_TOOL" --bootstrap-server "$BOOTSTRAP_SERVERS" --create --if-not-exists \
    --topic "$topic" --partitions "$PARTITIONS" --replication-factor "$REPLICATION_FACTOR"
done
"$TOPICS_TOOL" --bootstrap-server "$BOOTSTRAP_SERVERS" --describe --exclude-internal |
  grep PartitionCount
echo "topics ready: $#"
