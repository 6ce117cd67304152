"""The fault scenarios as data: what happens when, for how long, on a stream of which size.

A `Scenario` is pure: a stream (rate, seconds, poison share), the instances each service
starts with, the group protocol, and a schedule of `Fault`s at offsets from the start of
the stream. `harness` plays it; `checker` judges it. Keeping the schedule as data is what
lets the report draw every fault on the lag chart and lets a test check the schedules
without starting anything.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Final, Literal

Action = Literal[
    "kill_instance",  # SIGKILL one service instance, restart it at once
    "kill_leader",  # SIGKILL the broker leading the busiest partition, restart it
    "rolling_restart",  # SIGTERM each broker in turn, waiting for it to rejoin
    "cut_network",  # every client cut from every broker (the proxies drop everything)
    "cut_database",  # PostgreSQL unreachable for the services
    "read_only_database",  # the services' databases read-only, their sessions terminated
    "stop_smtp",  # the SMTP server refuses connections
    "scale",  # run `instances` of every service (start or SIGTERM the difference)
]

SERVICES: Final = ("voyage", "notification", "analytics")


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault: `action` at `at_s` seconds into the stream, lasting `seconds` (0: instant)."""

    at_s: float
    action: Action
    seconds: float = 0.0
    service: str | None = None
    """For `kill_instance`: which service (an instance of it is chosen when it fires)."""
    instances: int = 0
    """For `scale`: how many instances of each service from then on."""

    @property
    def label(self) -> str:
        target = f" {self.service}" if self.service else ""
        scaled = f" to {self.instances}" if self.action == "scale" else ""
        return f"{self.action}{target}{scaled}"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    seconds: float
    """How long the stream is published."""
    rate: int
    """Records per second, published evenly."""
    faults: tuple[Fault, ...] = ()
    instances: int = 2
    """Instances of each service at the start."""
    poison_share: float = 0.0
    """Share of the stream that is poison; 0 still publishes one record of each kind."""
    group_protocol: Literal["classic", "consumer"] = "classic"
    deferred_recipient: bool = False
    """One recipient answers 452 for the whole run (the `smtp` scenario)."""
    seed: int = 1
    tags: tuple[str, ...] = field(default=())

    @property
    def records(self) -> int:
        return int(self.seconds * self.rate)


def crash(seconds: float, rate: int, kills_per_service: int = 5, seed: int = 1) -> Scenario:
    """SIGKILL a random instance every few seconds, each service `kills_per_service` times."""
    rng = random.Random(seed)
    victims = [service for service in SERVICES for _ in range(kills_per_service)]
    rng.shuffle(victims)
    start, end = 0.1 * seconds, 0.85 * seconds
    step = (end - start) / max(1, len(victims))
    faults = tuple(
        Fault(round(start + i * step + rng.uniform(0, step / 2), 2), "kill_instance", service=s)
        for i, s in enumerate(victims)
    )
    return Scenario("crash", seconds, rate, faults, seed=seed)


def broker(seconds: float, rate: int) -> Scenario:
    """The busiest partition's leader SIGKILLed and restarted, then a rolling restart."""
    faults = (Fault(0.2 * seconds, "kill_leader"), Fault(0.5 * seconds, "rolling_restart"))
    return Scenario("broker", seconds, rate, faults)


def network(seconds: float, rate: int, cut_s: float = 30.0) -> Scenario:
    """Every service cut from the brokers for `cut_s`, then restored."""
    return Scenario("network", seconds, rate, (Fault(0.25 * seconds, "cut_network", cut_s),))


def database(seconds: float, rate: int, cut_s: float = 20.0, read_only_s: float = 10.0) -> Scenario:
    """PostgreSQL cut for `cut_s`; later, a failover-like read-only phase of `read_only_s`."""
    faults = (
        Fault(0.15 * seconds, "cut_database", cut_s),
        Fault(0.6 * seconds, "read_only_database", read_only_s),
    )
    return Scenario("database", seconds, rate, faults)


def smtp(seconds: float, rate: int, down_s: float = 20.0) -> Scenario:
    """The SMTP server down for `down_s`; one recipient deferred (452) all along."""
    faults = (Fault(0.3 * seconds, "stop_smtp", down_s),)
    return Scenario("smtp", seconds, rate, faults, deferred_recipient=True)


def rebalance(seconds: float, rate: int, protocol: Literal["classic", "consumer"]) -> Scenario:
    """Every service scaled 1 → 3 → 1 instances during the stream, under `protocol`."""
    faults = (
        Fault(0.25 * seconds, "scale", instances=3),
        Fault(0.6 * seconds, "scale", instances=1),
    )
    return Scenario(
        f"rebalance-{protocol}", seconds, rate, faults, instances=1, group_protocol=protocol
    )


def poison(seconds: float, rate: int, share: float = 0.01) -> Scenario:
    """A `share` of the stream bad, cycling through every poison kind of the simulator."""
    return Scenario("poison", seconds, rate, poison_share=share)


def everything(seconds: float, rate: int) -> Scenario:
    """The faults mixed on one longer stream: crashes, a leader kill, network, database, SMTP."""
    kills = crash(seconds, rate, kills_per_service=3, seed=7).faults
    mixed = (
        *kills,
        Fault(0.12 * seconds, "kill_leader"),
        Fault(0.3 * seconds, "cut_network", min(20.0, 0.1 * seconds)),
        Fault(0.5 * seconds, "cut_database", min(15.0, 0.08 * seconds)),
        Fault(0.7 * seconds, "stop_smtp", min(15.0, 0.08 * seconds)),
    )
    ordered = tuple(sorted(mixed, key=lambda f: f.at_s))
    return Scenario("all", seconds, rate, ordered, poison_share=0.01, deferred_recipient=True)


def full_suite(rate: int = 250) -> list[Scenario]:
    """`make chaos`: every scenario on its own, then the mixed run."""
    return [
        crash(60, rate),
        broker(60, rate),
        network(75, rate),
        database(70, rate),
        smtp(60, rate),
        rebalance(60, rate, "classic"),
        rebalance(60, rate, "consumer"),
        poison(45, rate),
        everything(120, rate),
    ]


def short_suite() -> list[Scenario]:
    """What `make test` runs: crash, network and poison, short (see tests/chaos)."""
    return [
        replace(crash(24, 120, kills_per_service=2), tags=("short",)),
        replace(network(30, 120, cut_s=8), tags=("short",)),
        replace(poison(15, 150, share=0.02), tags=("short",)),
    ]


def by_name(name: str, rate: int) -> list[Scenario]:
    """The scenarios `make chaos SCENARIO=name` runs (`all`: the full suite)."""
    suite = full_suite(rate)
    if name in ("all", "full"):
        return suite
    if name == "short":
        return short_suite()
    if name == "rebalance":
        return [s for s in suite if s.name.startswith("rebalance")]
    chosen = [s for s in suite if s.name == name or (name == "mixed" and s.name == "all")]
    if not chosen:
        known = sorted({s.name.split("-")[0] for s in suite} | {"all", "short", "mixed"})
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(known)}")
    return chosen
