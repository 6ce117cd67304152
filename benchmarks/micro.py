"""Per-event costs of the pieces whose design was chosen for speed, without Kafka or a database.

    .venv/bin/python benchmarks/micro.py [--events 5000] [--rounds 15]

The figures quoted in docs/performance.md's "Design choices" come from here. Each case runs
`--rounds` times over the same simulated events (the simulator's mixed flows, parsed once)
with the cyclic collector off, and the best round is printed, in nanoseconds per event:

* `json.loads` and `jiter` in decimal mode (the untyped decoders) against `parse_event`
  (`common.parsing`: msgspec decoding into the typed, validated events), on the records' bytes;
* building a `Record`-shaped value: a msgspec struct (`common.records`) against a dataclass
  with `slots=True` and with `frozen=True`;
* building a six-field analytics fact: a plain tuple, a NamedTuple positionally and by
  keyword, a frozen dataclass (`analytics_consumer.domain`);
* `extract` and `fold` of `analytics_consumer.domain` over the events;
* `voyage_consumer.store.fact_rows`, the `payment_fact` rows of the events' facts (SQLite's
  encoders).
"""

from __future__ import annotations

import argparse
import gc
import json
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jiter
import msgspec
from sqlalchemy import create_engine
from sqlmodel import Session

from analytics_consumer.domain import extract, fold
from common import bulk
from common.events import PaymentEvent
from common.parsing import parse_event
from dreamscape_dev.simulator import SimulationConfig, generate
from voyage_consumer.facts import to_fact
from voyage_consumer.store import fact_rows


class StructRecord(msgspec.Struct, eq=False, gc=False):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True, eq=False)
class SlotsRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class FrozenRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class NamedFact(NamedTuple):
    event_id: str
    payment_id: str
    at_ms: int
    units: int
    currency: str
    method: str


@dataclass(frozen=True, slots=True)
class FrozenFact:
    event_id: str
    payment_id: str
    at_ms: int
    units: int
    currency: str
    method: str


def simulated(count: int) -> tuple[list[bytes], list[PaymentEvent]]:
    values: list[bytes] = []
    events: list[PaymentEvent] = []
    seed = 0
    while len(events) < count:
        for record in generate(SimulationConfig(flows=2000, seed=seed)).records:
            assert record.value is not None
            values.append(record.value)
            events.append(parse_event(record.value, record.topic))
        seed += 1
    return values[:count], events[:count]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    values, events = simulated(args.events)
    facts = [extract(e) for e in events]
    voyage_facts = [to_fact(e) for e in events]
    with Session(create_engine("sqlite://")) as session:
        encode = bulk.encoders(session)
    n = len(events)
    topics = [e.event_type.replace("payment.", "dreamscape.payment.") for e in events]
    cases: dict[str, Callable[[], object]] = {
        "json.loads": lambda: [json.loads(v) for v in values],
        "jiter, decimal mode": lambda: [
            jiter.from_json(v, float_mode="decimal", cache_mode="keys") for v in values
        ],
        "parse_event (msgspec, validated)": lambda: [
            parse_event(v, t) for v, t in zip(values, topics, strict=True)
        ],
        "Record: msgspec.Struct": lambda: [StructRecord("t", 0, i, b"k", b"v") for i in range(n)],
        "Record: dataclass(slots=True)": lambda: [
            SlotsRecord("t", 0, i, b"k", b"v") for i in range(n)
        ],
        "Record: dataclass(frozen=True, slots=True)": lambda: [
            FrozenRecord("t", 0, i, b"k", b"v") for i in range(n)
        ],
        "fact: plain tuple": lambda: [("e", "p", i, 2, "EUR", "x") for i in range(n)],
        "fact: NamedTuple, positional": lambda: [
            NamedFact("e", "p", i, 2, "EUR", "x") for i in range(n)
        ],
        "fact: NamedTuple, keywords": lambda: [
            NamedFact(event_id="e", payment_id="p", at_ms=i, units=2, currency="EUR", method="x")
            for i in range(n)
        ],
        "fact: dataclass(frozen=True, slots=True)": lambda: [
            FrozenFact("e", "p", i, 2, "EUR", "x") for i in range(n)
        ],
        "analytics extract": lambda: [extract(e) for e in events],
        "analytics fold": lambda: fold(facts),
        "voyage fact_rows": lambda: fact_rows(voyage_facts, encode),
    }
    gc.collect()
    gc.disable()
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(args.rounds):
        for name, case in cases.items():
            best[name] = min(best[name], timeit.timeit(case, number=1) / n)
    gc.enable()
    print(f"{n} events, best of {args.rounds} rounds")
    for name, seconds in best.items():
        print(f"{name:44s} {seconds * 1e9:8,.0f} ns/event")


if __name__ == "__main__":
    main()
