"""`dreamscape validate`: per event, ok or the reason the consumers would give; exit 0 only if all ok."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from common.cli import main
from common.errors import InvalidEvent
from common.parsing import parse_event
from common.topics import EVENT_TYPES
from dreamscape_dev.testing.builders import (
    event,
    iso,
    spec_bytes,
    spec_example,
    spec_path,
    to_json,
)

COMPLETED = "payment.completed"


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command reads the services' settings: start each test from their defaults."""
    for name in ("TOPIC_PREFIX", "MAX_CLOCK_SKEW_SECONDS"):
        monkeypatch.delenv(name, raising=False)


def run(tmp_path: Path, lines: list[str], *args: str) -> tuple[int, list[str], str]:
    """`dreamscape validate FILE ARGS` over `lines`: exit code, stdout lines, stderr."""
    file = tmp_path / "events.jsonl"
    file.write_text("\n".join(lines) + "\n")
    return run_on(str(file), *args)


def run_on(source: str, *args: str) -> tuple[int, list[str], str]:
    """`dreamscape validate SOURCE ARGS`: exit code, stdout lines, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", source, *args])
    return code, out.getvalue().splitlines(), err.getvalue()


def line(document: dict[str, Any]) -> str:
    """`document` as one line of JSON with exact amounts."""
    return to_json(document)


def consumers_reason(text: str, topic: str | None = None) -> str:
    """What the parser itself says about `text`: `reason: detail`."""
    with pytest.raises(InvalidEvent) as raised:
        parse_event(text.encode(), topic, not_after=datetime.now(UTC) + timedelta(days=1))
    return str(raised.value)


class TestAccepted:
    def test_the_spec_examples_one_per_line_are_ok(self, tmp_path: Path) -> None:
        """The four printed examples, one per line, are each `ok` with their type and eventId, and the exit code is 0."""
        examples = [spec_example(t) for t in EVENT_TYPES]
        code, out, err = run(tmp_path, [line(d) for d in examples])
        assert code == 0
        assert out == [
            f"line {n}: ok {d['eventType']} {d['eventId']}" for n, d in enumerate(examples, 1)
        ]
        assert "4 event(s): 4 ok, 0 rejected" in err

    def test_a_json_array_of_the_examples_as_printed_is_ok(self, tmp_path: Path) -> None:
        """One JSON array holding the examples byte for byte (multi-line) is read item by item."""
        file = tmp_path / "events.json"
        file.write_bytes(b"[\n" + b",\n".join(spec_bytes(t) for t in EVENT_TYPES) + b"\n]\n")
        code, out, _ = run_on(str(file))
        assert code == 0
        assert [o.split(":")[0] for o in out] == ["item 1", "item 2", "item 3", "item 4"]
        assert all(": ok payment." in o for o in out)

    def test_standard_input(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """`-` reads the events from standard input."""
        data = (line(spec_example(COMPLETED)) + "\n").encode()
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
        code, out, _ = run_on("-")
        assert code == 0
        assert out[0].startswith("line 1: ok payment.completed ")

    def test_blank_lines_are_skipped_and_lines_keep_their_numbers(self, tmp_path: Path) -> None:
        """Blank lines are not events; the others are numbered by their line in the file."""
        code, out, _ = run(tmp_path, ["", line(spec_example(COMPLETED)), "   "])
        assert code == 0
        assert len(out) == 1
        assert out[0].startswith("line 2: ok")


class TestRejected:
    def test_bad_lines_get_the_reasons_the_consumers_give(self, tmp_path: Path) -> None:
        """Each bad line is reported with the parser's reason and detail, the good one ok, and the exit code is 1."""
        good = event(COMPLETED)
        bad = [
            line(event(COMPLETED, amount="1250.00")),
            line({k: v for k, v in event(COMPLETED).items() if k != "version"}),
            line(event(COMPLETED, amount=Decimal("12.345"))),  # EUR has 2 decimal places
            line(event(COMPLETED) | {"version": "2.0"}),
            '{"eventId": ',
            "[" + line(event(COMPLETED)) + "]",
        ]
        code, out, err = run(tmp_path, [line(good), *bad])
        assert code == 1
        assert out[0] == f"line 1: ok payment.completed {good['eventId']}"
        assert out[1:] == [f"line {n}: {consumers_reason(text)}" for n, text in enumerate(bad, 2)]
        reasons = [o.split(": ")[1] for o in out[1:]]
        assert reasons == [
            "wrong_type",
            "missing_field",
            "invalid_value",
            "unsupported_version",
            "not_json",
            "not_an_object",
        ]
        assert "7 event(s): 1 ok, 6 rejected" in err

    def test_json_output_names_reason_field_and_detail(self, tmp_path: Path) -> None:
        """`--json` prints one object per event, a rejection with the reason, wire field and detail."""
        bad = event(COMPLETED, currency="eur")
        code, out, _ = run(tmp_path, [line(spec_example(COMPLETED)), line(bad)], "--json")
        assert code == 1
        first, second = (json.loads(o) for o in out)
        assert first == {
            "line": 1,
            "ok": True,
            "eventType": COMPLETED,
            "eventId": spec_example(COMPLETED)["eventId"],
        }
        assert second["line"] == 2
        assert second["ok"] is False
        assert second["reason"] == "invalid_value"
        assert second["field"] == "payload.currency"
        assert "eur" in second["detail"]

    def test_topic_checks_the_event_type_under_the_prefix(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`--topic` reads events as records of that topic, under TOPIC_PREFIX like the services."""
        lines = [line(spec_example(COMPLETED))]
        code, out, _ = run(tmp_path, lines, "--topic", "dreamscape.payment.failed")
        assert code == 1
        assert out[0].startswith("line 1: event_type_mismatch: ")
        monkeypatch.setenv("TOPIC_PREFIX", "acme.")
        assert run(tmp_path, lines, "--topic", "acme.dreamscape.payment.completed")[0] == 0
        assert run(tmp_path, lines, "--topic", "acme.dreamscape.payment.failed")[0] == 1

    def test_the_future_is_judged_with_the_consumers_clock_skew(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An event two hours ahead is ok with the default 24 h skew and invalid_value under MAX_CLOCK_SKEW_SECONDS=60."""
        ahead = [line(event(COMPLETED, at=datetime.now(UTC) + timedelta(hours=2)))]
        assert run(tmp_path, ahead)[0] == 0
        monkeypatch.setenv("MAX_CLOCK_SKEW_SECONDS", "60")
        code, out, _ = run(tmp_path, ahead)
        assert code == 1
        assert out[0].startswith("line 1: invalid_value: timestamp is later than ")

    def test_array_items_keep_their_exact_number_text(self, tmp_path: Path) -> None:
        """An array item's amount is read as written: 17 decimal places are refused, where a float would round them away."""
        document = event(COMPLETED, amount=Decimal("12.30000000000000001"))
        assert float(document["payload"]["amount"]) == 12.3
        file = tmp_path / "events.json"
        file.write_text(f"[{to_json(document)}]")
        code, out, _ = run_on(str(file))
        assert code == 1
        assert out == ["item 1: " + consumers_reason(to_json(document))]
        assert "decimal place" in out[0]

    def test_a_broken_array_is_read_line_by_line(self, tmp_path: Path) -> None:
        """An array without its closing bracket is not one array: each line gets its own verdict."""
        code, out, _ = run(tmp_path, ["[", line(spec_example(COMPLETED)) + ","])
        assert code == 1
        assert out[0].startswith("line 1: not_json: ")
        assert out[1].startswith("line 2: not_json: ")  # the trailing comma

    def test_an_event_dated_before_2000_is_refused(self, tmp_path: Path) -> None:
        """A payment time before 2000-01-01 is invalid_value, as the consumers decide."""
        old = event(COMPLETED)
        old["payload"]["completedAt"] = iso(datetime(1999, 12, 31, 23, 0, tzinfo=UTC))
        code, out, _ = run(tmp_path, [line(old)])
        assert code == 1
        assert out == ["line 1: invalid_value: payload.completedAt: timestamp is before 2000-01-01"]


class TestNothingToCheck:
    def test_empty_input_exits_1(self, tmp_path: Path) -> None:
        """No event at all is not success: an empty pipe usually means a broken pipeline."""
        code, out, err = run(tmp_path, [""])
        assert code == 1
        assert out == []
        assert "no events in" in err

    def test_an_unreadable_file_exits_2(self, tmp_path: Path) -> None:
        """A file that cannot be read exits 2 with the reason, like a configuration error."""
        code, out, err = run_on(str(tmp_path / "missing.jsonl"))
        assert code == 2
        assert out == []
        assert "cannot read" in err


class TestDocuments:
    """Pretty-printed and concatenated documents, the spec's own format, besides JSON Lines."""

    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    def test_each_spec_example_file_as_printed_is_ok(self, event_type: str) -> None:
        """The spec's example file, pretty-printed over many lines, is one event, ok, on line 1."""
        code, out, err = run_on(str(spec_path(event_type)))
        assert code == 0
        assert out == [f"line 1: ok {event_type} {spec_example(event_type)['eventId']}"]
        assert "1 event(s): 1 ok, 0 rejected" in err

    def test_concatenated_pretty_documents_are_numbered_by_their_first_line(
        self, tmp_path: Path
    ) -> None:
        """The four printed examples one after another are four events, each at the line it starts on."""
        file = tmp_path / "events.json"
        file.write_bytes(b"".join(spec_bytes(t) for t in EVENT_TYPES))
        starts, number = [], 1
        for t in EVENT_TYPES:
            starts.append(number)
            number += spec_bytes(t).count(b"\n")
        code, out, _ = run_on(str(file))
        assert code == 0
        assert out == [
            f"line {n}: ok {t} {spec_example(t)['eventId']}"
            for n, t in zip(starts, EVENT_TYPES, strict=True)
        ]

    def test_json_lines_and_pretty_documents_mix(self, tmp_path: Path) -> None:
        """A JSON line, a pretty document and two documents on one line are each one event."""
        compact = line(spec_example(COMPLETED))
        pretty = json.dumps(json.loads(compact), indent=2)
        text = f"{compact}\n\n{pretty}\n{compact} {compact}\n"
        file = tmp_path / "events.json"
        file.write_text(text)
        code, out, _ = run_on(str(file))
        assert code == 0
        last = 3 + pretty.count("\n") + 1
        assert [o.split(": ")[0] for o in out] == [
            "line 1",
            "line 3",
            f"line {last}",
            f"line {last}",
        ]

    def test_a_broken_pretty_document_is_one_rejection(self, tmp_path: Path) -> None:
        """A pretty document broken inside is one not_json verdict, and the next document is still read."""
        broken = spec_bytes(COMPLETED).replace(b'"EUR",', b'"EUR"', 1)
        file = tmp_path / "events.json"
        file.write_bytes(broken + spec_bytes(COMPLETED))
        code, out, _ = run_on(str(file))
        assert code == 1
        assert len(out) == 2
        assert out[0] == "line 1: " + consumers_reason(broken.decode().rstrip())
        assert out[0].startswith("line 1: not_json: ")
        second = broken.count(b"\n") + 1
        assert out[1].startswith(f"line {second}: ok payment.completed ")

    def test_garbage_after_a_document_on_its_line_is_refused(self, tmp_path: Path) -> None:
        """A document followed on its last line by something else (a comma) is not_json, as the consumers say."""
        text = line(spec_example(COMPLETED)) + " x"
        code, out, _ = run(tmp_path, [text, line(spec_example(COMPLETED))])
        assert code == 1
        assert out[0] == f"line 1: {consumers_reason(text)}"
        assert out[1].startswith("line 2: ok ")

    def test_every_garbage_line_gets_its_own_verdict(self, tmp_path: Path) -> None:
        """Lines that are not JSON at all are each rejected on their own line."""
        code, out, _ = run(tmp_path, ["hello", "world", line(spec_example(COMPLETED))])
        assert code == 1
        assert [o.split(": ")[:2] for o in out] == [
            ["line 1", "not_json"],
            ["line 2", "not_json"],
            ["line 3", "ok payment.completed " + spec_example(COMPLETED)["eventId"]],
        ]


class TestEveryProblem:
    """All the problems of an event, the consumers' verdict first."""

    def test_every_field_problem_is_reported_after_the_consumers_verdict(
        self, tmp_path: Path
    ) -> None:
        """An event with three bad fields prints the consumers' reason, then each other problem on an `also` line."""
        bad = event(COMPLETED, amount="1250.00", currency="XYZ")
        del bad["payload"]["userId"]
        code, out, _ = run(tmp_path, [line(bad)])
        assert code == 1
        assert out[0] == f"line 1: {consumers_reason(line(bad))}"
        assert out[0].startswith("line 1: wrong_type: payload.amount: ")
        assert out[1:] == [
            "line 1: also missing_field: payload.userId is missing",
            "line 1: also invalid_value: payload.currency: not an ISO 4217 currency code: XYZ",
        ]

    def test_json_output_lists_every_problem(self, tmp_path: Path) -> None:
        """`--json` keeps the consumers' reason on top and lists every problem under `problems`."""
        bad = event(COMPLETED, currency="eur", transactionId=" ")
        bad["version"] = "2.0"
        code, out, _ = run(tmp_path, [line(bad)], "--json")
        assert code == 1
        verdict = json.loads(out[0])
        assert verdict["reason"] == "unsupported_version"
        assert [(p["reason"], p["field"]) for p in verdict["problems"]] == [
            ("unsupported_version", "version"),
            ("invalid_value", "payload.transactionId"),
            ("invalid_value", "payload.currency"),
        ]
        assert verdict["problems"][0] == {
            "reason": verdict["reason"],
            "field": verdict["field"],
            "detail": verdict["detail"],
        }

    def test_an_amount_is_judged_against_the_currency_meant(self, tmp_path: Path) -> None:
        """With `eur` for a currency, too many decimals are still found, judged against EUR."""
        bad = event(COMPLETED, currency="eur", amount=Decimal("12.345"))
        code, out, _ = run(tmp_path, [line(bad)])
        assert code == 1
        assert out == [
            "line 1: invalid_value: payload.currency: ISO 4217 currency code in the wrong case: "
            "eur (expected EUR)",
            "line 1: also invalid_value: payload.amount: EUR amounts have at most 2 decimal place(s)",
        ]

    def test_a_topic_mismatch_does_not_hide_the_other_problems(self, tmp_path: Path) -> None:
        """After an event_type_mismatch, the event is still checked against its own eventType."""
        bad = event(COMPLETED, amount=0)
        code, out, _ = run(tmp_path, [line(bad)], "--topic", "dreamscape.payment.failed")
        assert code == 1
        assert out[0].startswith("line 1: event_type_mismatch: ")
        assert out[1:] == [
            "line 1: also invalid_value: payload.amount: amount must be greater than 0"
        ]

    def test_a_document_without_a_payload_stops_at_the_payload(self, tmp_path: Path) -> None:
        """A missing payload is one problem: the fields it would hold are not listed one by one."""
        bad = {k: v for k, v in event(COMPLETED).items() if k != "payload"}
        bad["timestamp"] = "yesterday"
        code, out, _ = run(tmp_path, [line(bad)])
        assert code == 1
        assert out[0] == f"line 1: {consumers_reason(line(bad))}"
        assert out[0].startswith("line 1: invalid_value: timestamp: ")
        assert out[1:] == ["line 1: also missing_field: payload is missing"]


class TestCurrencyCase:
    def test_a_lower_case_currency_is_refused_as_the_wrong_case(self, tmp_path: Path) -> None:
        """`eur` is still refused (invalid_value), with a detail saying it is EUR in the wrong case."""
        bad = event(COMPLETED, currency="eur")
        code, out, _ = run(tmp_path, [line(bad)])
        assert code == 1
        assert out == [
            "line 1: invalid_value: payload.currency: ISO 4217 currency code in the wrong case: "
            "eur (expected EUR)"
        ]
        assert "wrong case" in consumers_reason(line(bad))

    def test_an_unknown_code_is_still_not_an_iso_4217_code(self, tmp_path: Path) -> None:
        """A code that is no ISO 4217 code in any case keeps the plain message."""
        code, out, _ = run(tmp_path, [line(event(COMPLETED, currency="EUX"))])
        assert code == 1
        assert out == [
            "line 1: invalid_value: payload.currency: not an ISO 4217 currency code: EUX"
        ]
