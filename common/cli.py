"""`dreamscape`: the operators' command line (dead-letter queues, events), in the service image too.

    dreamscape dlq list --group voyage-service [--json]
    dreamscape dlq replay --group voyage-service (--all | --only 0:12 --only 2:7) [--error-type not_json] [--dry-run]
    dreamscape validate FILE|- [--topic dreamscape.payment.completed] [--json]

Where the tooling (`dreamscape_dev`) is installed, its commands join in through the
`dreamscape.commands` entry-point group (`simulate`, `broker`), so the runtime imports no
tooling. Kafka is reached with the same settings as the services: `KAFKA_BOOTSTRAP_SERVERS`
and any other `KAFKA_*` property, `TOPIC_PREFIX`, `DLQ_TOPIC`. A command that needs the broker
asks it first and waits at most `--timeout` seconds (15): a broker it cannot reach, or one that
refuses its credentials, ends it with one line naming the cause and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from common import dlq, validate
from common.errors import CriticalError, TransientError
from common.kafka import KafkaConfigError, KafkaProducer, read_all
from common.kafka.access import topic_read_problem
from common.kafka.reach import DEFAULT_TIMEOUT_S, broker_problem
from common.settings import ConfigurationError, RunnerSettings, load_settings
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
    except (ToolError, TransientError, CriticalError) as exc:  # a broker gone mid-command too
        print(f"dreamscape: {exc}", file=sys.stderr)
        return 1


class ToolError(Exception):
    """A command cannot do what was asked (a topic it may not read...); one line says why."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dreamscape", description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap-servers", help="overrides KAFKA_BOOTSTRAP_SERVERS")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for the broker before giving up (default {DEFAULT_TIMEOUT_S:g})",
    )
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

    checking = commands.add_parser(
        "validate", help="check events as the consumers would read them: ok, or the reason"
    )
    checking.add_argument(
        "file", metavar="FILE", help="one JSON array, or one event per line; -: stdin"
    )
    checking.add_argument(
        "--topic", help="read them as records of this topic (eventType must match)"
    )
    checking.add_argument("--json", action="store_true", help="one JSON object per event")
    checking.set_defaults(command=_validate)

    for register in _plugins():  # tooling commands, where the tooling is installed
        register(commands)
    return parser


Register = Callable[[Any], None]
PLUGIN_GROUP = "dreamscape.commands"


def _plugins() -> list[Register]:
    """The registered command plugins that can be loaded (the tooling may not be installed)."""
    found = []
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            found.append(entry.load())
        except ImportError:  # declared by the distribution, absent from this install
            continue
    return found


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
    require_broker(args, settings)
    # An unreadable topic reads as empty: ask first, so refusal is never "0 record(s)".
    if problem := topic_read_problem(client_config(settings), topic, timeout_s=args.timeout):
        raise ToolError(problem)
    records = read_all(client_config(settings), topic)
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
        producer = KafkaProducer(settings.producer_config() | client_config(settings))
        producer.send_confirmed(
            [dlq.to_replay_record(e, topic) for e in chosen], timeout_s=max(args.timeout, 30.0)
        )
    print(f"{len(chosen)} record(s) {'selected' if args.dry_run else 'replayed'}")
    return 0


def _validate(args: argparse.Namespace, settings: RunnerSettings) -> int:
    """Exit 0 when every event is accepted, 1 when one is not or there is none, 2 unreadable."""
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"dreamscape: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    skew = timedelta(seconds=settings.max_clock_skew_seconds)
    verdicts = validate.check(
        data,
        topic=args.topic,
        topics=Topics(settings.topic_prefix),
        not_after=datetime.now(UTC) + skew,
    )
    if not verdicts:  # an empty pipe is more likely a broken pipeline than good news
        print(f"dreamscape: no events in {args.file}", file=sys.stderr)
        return 1
    for verdict in verdicts:
        print(json.dumps(verdict.as_json()) if args.json else verdict.text())
    rejected = sum(not v.ok for v in verdicts)
    print(
        f"{len(verdicts)} event(s): {len(verdicts) - rejected} ok, {rejected} rejected",
        file=sys.stderr,
    )
    return 1 if rejected else 0


def require_broker(args: argparse.Namespace, settings: RunnerSettings) -> None:
    """Raise `ToolError` naming why, if the broker cannot be used within `--timeout`."""
    if problem := broker_problem(client_config(settings), args.timeout):
        raise ToolError(problem)


def client_config(settings: RunnerSettings) -> dict[str, str]:
    """Connection properties only (bootstrap, security), shared by readers and producers."""
    config = {"bootstrap.servers": settings.kafka.get("bootstrap.servers", "localhost:9092")}
    prefixes = ("security.", "sasl.", "ssl.", "client.")
    config.update({k: v for k, v in settings.kafka.items() if k.startswith(prefixes)})
    return config


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


if __name__ == "__main__":  # `python -m common.cli`: run the module plugins import, not a copy
    from common.cli import main as imported_main

    raise SystemExit(imported_main())
