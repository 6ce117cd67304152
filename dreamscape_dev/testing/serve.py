"""`dreamscape broker`: a throw-away broker in the foreground, for local work without Docker.

    dreamscape broker [--kind apache|tansu] [--nodes N] [--port P]

Prints exactly one line on stdout, `bootstrap=HOST:PORT[,HOST:PORT...]`, once the broker
answers (so a script can `read` it); everything else goes to stderr. SIGTERM or SIGINT stops
the broker and removes its data; the exit code is 0 then, 1 if the broker could not start
or a node died under it.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import AbstractContextManager
from typing import Literal

from dreamscape_dev.testing.apache_kafka import ApacheKafka, KafkaStartError, missing_tools
from dreamscape_dev.testing.broker import BrokerStartError, EmbeddedBroker

Kind = Literal["apache", "tansu"]


def _broker(kind: Kind, nodes: int, port: int | None) -> AbstractContextManager[object]:
    if kind == "tansu":
        return EmbeddedBroker(port=port)
    ports = [port + n for n in range(nodes)] if port else None
    return ApacheKafka(nodes, client_ports=ports)


def _bootstrap(broker: object) -> str:
    assert isinstance(broker, ApacheKafka | EmbeddedBroker)
    return broker.bootstrap_servers


def _node_died(broker: object) -> str | None:
    if isinstance(broker, ApacheKafka):
        dead = [n.node_id for n in broker.nodes.values() if not n.alive]
        return f"node(s) {dead} exited" if dead else None
    return None


def serve(kind: Kind, nodes: int = 1, port: int | None = None) -> int:
    """Run the broker until SIGTERM/SIGINT; see the module docstring for the contract."""
    if kind == "tansu" and nodes != 1:
        print("dreamscape broker: Tansu runs one node only (--nodes 1)", file=sys.stderr)
        return 2
    if kind == "apache" and (missing := missing_tools()):
        print(f"dreamscape broker: Apache Kafka needs {', '.join(missing)}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"starting {kind} ({nodes} node(s))...", file=sys.stderr, flush=True)
    try:
        with _broker(kind, nodes, port) as broker:
            print(f"bootstrap={_bootstrap(broker)}", flush=True)
            print("ready; SIGTERM or Ctrl-C stops it and removes its data", file=sys.stderr)
            while not stop.wait(1.0):
                if problem := _node_died(broker):
                    print(f"dreamscape broker: {problem}", file=sys.stderr)
                    return 1
    except (KafkaStartError, BrokerStartError) as exc:
        print(f"dreamscape broker: {exc}", file=sys.stderr)
        return 1
    print("stopped; data removed", file=sys.stderr)
    return 0
