"""The services of a chaos run as real processes: several instances each, killed and restarted.

An instance that exits while nobody asked it to (no SIGKILL from a fault, no SIGTERM from a
scale-down or the final stop) is a *death*: the run fails on it, whatever the figures say.
"""

from __future__ import annotations

import random
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dreamscape_dev.demo.orchestra import SERVICES, ServiceDef, ServiceProcess

DEFINITIONS: dict[str, ServiceDef] = {d.name: d for d in SERVICES}


@dataclass
class Instance:
    service: str
    number: int
    process: ServiceProcess
    stopping: bool = False
    """SIGKILLed or SIGTERMed on purpose: its exit is not a death."""


@dataclass
class Fleet:
    """Instances per service, all sharing their service's environment."""

    envs: Mapping[str, Mapping[str, str]]
    logs: Path
    running: dict[str, list[Instance]] = field(default_factory=dict)
    exits: list[tuple[str, int]] = field(default_factory=list)
    """(instance, exit code) of every instance stopped before the end (scale-downs)."""
    deaths: list[str] = field(default_factory=list)
    kills: dict[str, int] = field(default_factory=dict)
    _started: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def scale(self, service: str, wanted: int) -> None:
        """Start or SIGTERM instances until `wanted` run; a stopped one must exit 0."""
        with self._lock:
            running = self.running.setdefault(service, [])
            while len(running) < wanted:
                running.append(self._start(service))
            leaving = running[wanted:]
            del running[wanted:]
        for instance in leaving:
            instance.stopping = True
            instance.process.terminate()
        for instance in leaving:
            self.exits.append((self._name(instance), instance.process.wait()))

    def kill(self, service: str, rng: random.Random) -> str:
        """SIGKILL a random running instance of `service` and start a new one in its place."""
        with self._lock:
            running = self.running[service]
            victim = rng.choice(running)
            victim.stopping = True
            victim.process.process.send_signal(signal.SIGKILL)
            victim.process.process.wait()
            running[running.index(victim)] = self._start(service)
            self.kills[service] = self.kills.get(service, 0) + 1
        return self._name(victim)

    def check_deaths(self) -> list[str]:
        """Instances that exited on their own since the last call (recorded in `deaths`)."""
        found = []
        with self._lock:
            for instances in self.running.values():
                for instance in instances:
                    code = instance.process.exit_code()
                    if code is not None and not instance.stopping:
                        instance.stopping = True
                        found.append(f"{self._name(instance)} exited {code}")
        self.deaths.extend(found)
        return found

    def stop_all(self) -> dict[str, int]:
        """SIGTERM every instance at once; instance → exit code."""
        with self._lock:
            instances = [i for group in self.running.values() for i in group]
            self.running = {}
        for instance in instances:
            instance.stopping = True
            instance.process.terminate()
        return {self._name(i): i.process.wait() for i in instances}

    def _start(self, service: str) -> Instance:
        self._started += 1
        number = self._started
        log = self.logs / f"{service}-{number:03d}.log"
        process = ServiceProcess.start(DEFINITIONS[service], self.envs[service], log)
        return Instance(service, number, process)

    @staticmethod
    def _name(instance: Instance) -> str:
        return f"{instance.service}#{instance.number}"
