"""The operators' tools with no broker: a bounded wait, one line naming the cause, exit 1.

No broker is needed: a localhost port bound but never listening refuses every connection,
as a broker that is down or a wrong address does. Each tool runs as a real process
(`python -m common.cli`, the `dreamscape` command), its time measured only to prove it ends:
what is asserted is its exit code and its one line on stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dreamscape_dev.testing.builders import event, to_json

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_FLAG = ("--timeout", "3")
#: Far above any bound the tools keep (the default wait is 15 s): proves they end, no more.
ENDS_WITHIN_S = 60.0


@dataclass
class Done:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return self.stderr.strip().splitlines()


def dreamscape(*args: str, stdin: str = "") -> Done:
    """`dreamscape ARGS` as a process, with none of the test runner's KAFKA_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env.pop("TOPIC_PREFIX", None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "common.cli", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=ENDS_WITHIN_S + 30,
        check=False,
    )
    return Done(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def assert_one_line_naming_unreachable(done: Done, address: str) -> None:
    assert done.code == 1, done
    assert len(done.lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "broker unreachable" in done.lines[0]
    assert address in done.lines[0]
    assert done.seconds < ENDS_WITHIN_S


class TestNoBroker:
    def test_dlq_list_with_no_broker_ends_with_one_line_naming_it(self, closed_port: int) -> None:
        """`dlq list` against a closed port exits 1 within its --timeout with one line saying the broker is unreachable, never "0 record(s)"."""
        address = f"127.0.0.1:{closed_port}"
        done = dreamscape(
            "--bootstrap-servers", address, *TIMEOUT_FLAG, "dlq", "list", "--group", "g"
        )
        assert_one_line_naming_unreachable(done, address)
        assert "record(s)" not in done.stdout

    def test_dlq_replay_with_no_broker_ends_with_one_line_naming_it(self, closed_port: int) -> None:
        """`dlq replay --all` against a closed port exits 1 with one line saying the broker is unreachable."""
        address = f"127.0.0.1:{closed_port}"
        done = dreamscape(
            "--bootstrap-servers", address, *TIMEOUT_FLAG, "dlq", "replay", "--group", "g", "--all"
        )
        assert_one_line_naming_unreachable(done, address)
        assert "replayed" not in done.stdout

    def test_simulate_with_no_broker_ends_with_one_line_naming_it(self, closed_port: int) -> None:
        """`simulate` against a closed port exits 1 with one line saying the broker is unreachable, where it used to wait for ever."""
        address = f"127.0.0.1:{closed_port}"
        done = dreamscape("--bootstrap-servers", address, *TIMEOUT_FLAG, "simulate", "--flows", "3")
        assert_one_line_naming_unreachable(done, address)
        assert "published" not in done.stdout

    def test_dlq_list_ends_within_the_default_bound(self, closed_port: int) -> None:
        """Without --timeout, `dlq list` against a closed port still ends (the default wait is 15 s) with the one line."""
        address = f"127.0.0.1:{closed_port}"
        done = dreamscape("--bootstrap-servers", address, "dlq", "list", "--group", "g")
        assert_one_line_naming_unreachable(done, address)
        assert "15 s" in done.lines[0]

    def test_validate_with_a_topic_needs_no_broker(self, closed_port: int) -> None:
        """`validate --topic` reads no broker: against a closed port it checks the event and exits 0."""
        completed = to_json(event("payment.completed"))
        done = dreamscape(
            "--bootstrap-servers",
            f"127.0.0.1:{closed_port}",
            *TIMEOUT_FLAG,
            "validate",
            "-",
            "--topic",
            "dreamscape.payment.completed",
            stdin=completed + "\n",
        )
        assert done.code == 0, done
        assert done.stdout.startswith("line 1: ok payment.completed")
        assert done.seconds < ENDS_WITHIN_S
