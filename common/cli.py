"""`dreamscape`: the shared tooling's command line (dead-letter queues and the simulator).

    dreamscape dlq list --group voyage-service [--json]
    dreamscape dlq replay --group voyage-service (--all | --only 0:12 --only 2:7) [--error-type not_json] [--dry-run]
    dreamscape simulate --flows 2000 --seed 7 --duplicates 0.02 --reorder 0.1 --poison 10
    dreamscape broker [--kind apache|tansu] [--nodes N] [--port P]

Kafka is reached with the same settings as the services: `KAFKA_BOOTSTRAP_SERVERS` and any
other `KAFKA_*` property, `TOPIC_PREFIX`, `DLQ_TOPIC`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from common import dlq
from common.kafka import KafkaConfigError, KafkaProducer, create_topics, read_all
from common.settings import ConfigurationError, RunnerSettings, load_settings
from common.simulator import SimulationConfig, generate
from common.topics import Topics


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(RunnerSettings)
        if args.bootstrap_servers:
            settings = settings.model_copy(
                update={"kafka": {**settings.kafka, "bootstrap.servers": args.bootstrap_servers}}
            )
        return int(args.command(args, settings))
    except (ConfigurationError, KafkaConfigError) as exc:
        print(f"dreamscape: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dreamscape", description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap-servers", help="overrides KAFKA_BOOTSTRAP_SERVERS")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    dlq_parser = commands.add_parser("dlq", help="inspect and replay dead-letter queues")
    dlq_commands = dlq_parser.add_subparsers(required=True, metavar="ACTION")
    listing = dlq_commands.add_parser("list", help="list DLQ records with their reasons")
    _dlq_source(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(command=_dlq_list)
    replay = dlq_commands.add_parser("replay", help="send DLQ records back to their topic")
    _dlq_source(replay)
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every record (after filters)")
    which.add_argument("--only", action="append", metavar="PARTITION:OFFSET", help="repeatable")
    replay.add_argument("--error-type", action="append", default=[], help="repeatable filter")
    replay.add_argument("--dry-run", action="store_true", help="list what would be replayed")
    replay.set_defaults(command=_dlq_replay)

    sim = commands.add_parser("simulate", help="publish simulated payment flows")
    sim.add_argument("--flows", type=int, default=1000)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--duplicates", type=float, default=0.0, help="share of records sent twice")
    sim.add_argument("--reorder", type=float, default=0.0, help="share of flows out of order")
    sim.add_argument("--poison", type=int, default=0, help="number of invalid records")
    sim.add_argument("--partitions", type=int, default=6, help="when creating the topics")
    sim.add_argument("--no-create-topics", dest="create_topics", action="store_false")
    sim.add_argument("--expectations", metavar="FILE", help="write the expected outcome (JSON)")
    sim.set_defaults(command=_simulate)

    broker = commands.add_parser("broker", help="run a throw-away broker in the foreground")
    broker.add_argument("--kind", choices=("apache", "tansu"), default="apache")
    broker.add_argument("--nodes", type=int, default=1, help="Apache Kafka nodes (1)")
    broker.add_argument("--port", type=int, help="client port of the first node (default: free)")
    broker.set_defaults(command=_broker)
    return parser


def _dlq_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--group", help="consumer group: reads dreamscape.dlq.<group>")
    source.add_argument("--topic", help="a DLQ topic by name")


def _dlq_topic(args: argparse.Namespace, settings: RunnerSettings) -> str:
    return str(args.topic or Topics(settings.topic_prefix).dlq(args.group))


def _read_entries(
    args: argparse.Namespace, settings: RunnerSettings
) -> tuple[str, list[dlq.DlqEntry]]:
    topic = _dlq_topic(args, settings)
    records = read_all(_client_config(settings), topic)
    return topic, [dlq.read_entry(r) for r in records]


def _dlq_list(args: argparse.Namespace, settings: RunnerSettings) -> int:
    topic, entries = _read_entries(args, settings)
    if args.json:
        for entry in entries:
            print(json.dumps(_entry_json(entry)))
        return 0
    copies = len(entries) - len(dlq.first_copies(entries))
    again = f" ({copies} written again after a redelivery)" if copies else ""
    print(f"{len(entries)} record(s) in {topic}{again}")
    rows = [
        (
            e.ref,
            e.error_type,
            f"{e.original_topic}[{e.original_partition}]@{e.original_offset}",
            e.failed_at[:19],
            str(e.attempts),
            e.error_message[:80],
        )
        for e in entries
    ]
    _table(("DLQ P:O", "ERROR TYPE", "ORIGINAL", "FAILED AT", "TRIES", "MESSAGE"), rows)
    for error_type, count in Counter(e.error_type for e in entries).most_common():
        print(f"  {count:6d}  {error_type}")
    return 0


def _entry_json(entry: dlq.DlqEntry) -> dict[str, Any]:
    record = entry.record
    return {
        "ref": entry.ref,
        "error_type": entry.error_type,
        "error_message": entry.error_message,
        "original_topic": entry.original_topic,
        "original_partition": entry.original_partition,
        "original_offset": entry.original_offset,
        "failed_at": entry.failed_at,
        "attempts": entry.attempts,
        "consumer_group": entry.group,
        "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
        "value_bytes": len(record.value) if record.value is not None else None,
    }


def _dlq_replay(args: argparse.Namespace, settings: RunnerSettings) -> int:
    topic, entries = _read_entries(args, settings)
    if args.all:  # one replay per original record, however many letters it has
        entries = dlq.first_copies(entries)
    chosen = dlq.select(entries, refs=args.only or (), error_types=args.error_type)
    missing = sorted(set(args.only or ()) - {e.ref for e in chosen})
    if missing:
        print(f"dreamscape: not in {topic}: {', '.join(missing)}", file=sys.stderr)
        return 1
    for entry in [e for e in chosen if e.value_omitted]:  # a marker: the record is not in it
        print(
            f"skipping {entry.ref}: its value was omitted ({entry.value_omitted}); the record is "
            f"{entry.original_topic}[{entry.original_partition}]@{entry.original_offset}",
            file=sys.stderr,
        )
    chosen = [e for e in chosen if not e.value_omitted]
    for entry in chosen:
        print(
            f"{'would replay' if args.dry_run else 'replaying'} {entry.ref} → {entry.original_topic}"
        )
    if not args.dry_run and chosen:
        producer = KafkaProducer(settings.producer_config() | _client_config(settings))
        producer.send_confirmed([dlq.to_replay_record(e, topic) for e in chosen])
    print(f"{len(chosen)} record(s) {'selected' if args.dry_run else 'replayed'}")
    return 0


def _simulate(args: argparse.Namespace, settings: RunnerSettings) -> int:
    topics = Topics(settings.topic_prefix)
    config = SimulationConfig(
        flows=args.flows,
        seed=args.seed,
        duplicate_rate=args.duplicates,
        reorder_rate=args.reorder,
        poison=args.poison,
        topics=topics,
    )
    simulation = generate(config)
    client = _client_config(settings)
    if args.create_topics:
        create_topics(client["bootstrap.servers"], topics.payment_topics, args.partitions, client)
    producer = KafkaProducer(settings.producer_config() | client)
    producer.send(simulation.records)
    unsent = producer.flush(60)
    if args.expectations:
        with open(args.expectations, "w", encoding="utf-8") as out:
            json.dump(asdict(simulation.expected), out, indent=2, default=_json_default)
    print(f"published {len(simulation.records) - unsent} record(s) for {args.flows} flow(s)")
    return 0 if unsent == 0 else 1


def _broker(args: argparse.Namespace, settings: RunnerSettings) -> int:
    from common.testing.serve import serve  # tooling: not needed by the other commands

    return serve(args.kind, args.nodes, args.port)


def _client_config(settings: RunnerSettings) -> dict[str, str]:
    """Connection properties only (bootstrap, security), shared by readers and producers."""
    config = {"bootstrap.servers": settings.kafka.get("bootstrap.servers", "localhost:9092")}
    prefixes = ("security.", "sasl.", "ssl.", "client.")
    config.update({k: v for k, v in settings.kafka.items() if k.startswith(prefixes)})
    return config


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Topics):
        return value.prefix
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


if __name__ == "__main__":
    raise SystemExit(main())
