#!/bin/sh
# Creates the topics named as arguments (idempotent: --if-not-exists) with their retention,
# sets that retention on topics that already existed, then prints each topic's summary line
# (name, partition count, replication factor).
# Run by compose.yaml's one-shot `topics` service in the apache/kafka image:
#   BOOTSTRAP_SERVERS=kafka:9092 PARTITIONS=6 REPLICATION_FACTOR=1 \
#   RETENTION_MS=2592000000 DLQ_RETENTION_MS=31536000000 create-topics.sh TOPIC...
# RETENTION_MS applies to the payment topics, DLQ_RETENTION_MS to the dead-letter topics
# (names with a `.dlq.` part). Kafka is the replay window, not the archive: the 7-year audit
# trail is analytics' `analytics_audit` table (docs/operations.md, "Retention").
# An existing topic keeps its partition count; adding partitions is a deliberate act
# (docs/operations.md, "Scaling and partitions").
set -eu
: "${BOOTSTRAP_SERVERS:?}" "${PARTITIONS:?}" "${REPLICATION_FACTOR:?}"
RETENTION_MS="${RETENTION_MS:-2592000000}"         # 30 days
DLQ_RETENTION_MS="${DLQ_RETENTION_MS:-31536000000}" # 365 days
[ "$#" -gt 0 ] || { echo "usage: create-topics.sh TOPIC..." >&2; exit 2; }
TOPICS_TOOL="${TOPICS_TOOL:-/opt/kafka/bin/kafka-topics.sh}" # tests/deploy swap in a stub
CONFIGS_TOOL="${CONFIGS_TOOL:-/opt/kafka/bin/kafka-configs.sh}"

retention_of() {
  case "$1" in
    *.dlq.*) echo "$DLQ_RETENTION_MS" ;;
    *) echo "$RETENTION_MS" ;;
  esac
}

for topic in "$@"; do
  retention="$(retention_of "$topic")"
  "$TOPICS_TOOL" --bootstrap-server "$BOOTSTRAP_SERVERS" --create --if-not-exists \
    --topic "$topic" --partitions "$PARTITIONS" --replication-factor "$REPLICATION_FACTOR" \
    --config "retention.ms=$retention"
  # --if-not-exists leaves an existing topic's configuration alone: set its retention too.
  if [ -x "$CONFIGS_TOOL" ]; then
    "$CONFIGS_TOOL" --bootstrap-server "$BOOTSTRAP_SERVERS" --alter --entity-type topics \
      --entity-name "$topic" --add-config "retention.ms=$retention"
  else
    echo "warning: $CONFIGS_TOOL not found: the retention of $topic is set only if it was created now" >&2
  fi
done
"$TOPICS_TOOL" --bootstrap-server "$BOOTSTRAP_SERVERS" --describe --exclude-internal |
  grep PartitionCount
echo "topics ready: $#"
