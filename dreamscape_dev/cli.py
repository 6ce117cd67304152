"""The `dreamscape` commands that are tooling, not operations: `simulate` and `broker`.

Registered through the `dreamscape.commands` entry-point group (pyproject.toml), so
`common.cli` finds them where this package is installed and never imports it.

    dreamscape simulate --flows 2000 --seed 7 --duplicates 0.02 --reorder 0.1 --poison 10
    dreamscape broker [--kind apache|tansu] [--nodes N] [--port P]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from common.cli import client_config, require_broker
from common.kafka import KafkaProducer, create_topics
from common.settings import RunnerSettings
from common.topics import Topics
from dreamscape_dev.simulator import SimulationConfig, generate


def register_simulate(commands: Any) -> None:
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


def register_broker(commands: Any) -> None:
    broker = commands.add_parser("broker", help="run a throw-away broker in the foreground")
    broker.add_argument("--kind", choices=("apache", "tansu"), default="apache")
    broker.add_argument("--nodes", type=int, default=1, help="Apache Kafka nodes (1)")
    broker.add_argument("--port", type=int, help="client port of the first node (default: free)")
    broker.set_defaults(command=_broker)


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
    client = client_config(settings)
    require_broker(args, settings)  # librdkafka would retry an absent broker for ever
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
    from dreamscape_dev.testing.serve import serve  # tooling: not needed by the other commands

    return serve(args.kind, args.nodes, args.port)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Topics):
        return value.prefix
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
