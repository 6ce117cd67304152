"""`dreamscape validate`: would the consumers accept these events, and if not, why?

The answer must be the consumers' own, so each event goes through `common.parsing.parse_event`
with the run loop's arguments (the topic, the clock plus `MAX_CLOCK_SKEW_SECONDS`), never
through the JSON Schema in `contracts/`: the schema cannot say everything the parser decides
(minor units, the clock), and an operator asking why a record was dead-lettered needs the
reason the DLQ shows. A service's own pre-handler check (analytics' exact-amount check) is
not run: the runtime does not import the services.

Input is one JSON array of events, or one event per line (blank lines skipped). An array's
items are handed to the parser as the exact text they have in the file, so amounts keep
their decimal text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from common.errors import InvalidEvent
from common.events import PaymentEvent
from common.parsing import parse_event
from common.topics import Topics

_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome for one event: where it was in the input, and the event or its rejection."""

    unit: Literal["line", "item"]
    number: int
    """1-based: the line in the file, or the position in the array."""
    event: PaymentEvent | None = None
    rejection: InvalidEvent | None = None

    @property
    def ok(self) -> bool:
        return self.rejection is None

    def text(self) -> str:
        """`line 3: ok payment.failed <eventId>`, or `line 4: <reason>: <detail>`."""
        if self.rejection is not None:
            return f"{self.unit} {self.number}: {self.rejection}"
        assert self.event is not None
        return f"{self.unit} {self.number}: ok {self.event.event_type} {self.event.event_id}"

    def as_json(self) -> dict[str, Any]:
        """The verdict as one JSON object, the rejection's fields named as in the DLQ."""
        if self.rejection is not None:
            return {
                self.unit: self.number,
                "ok": False,
                "reason": self.rejection.reason,
                "field": self.rejection.field,
                "detail": self.rejection.detail,
            }
        assert self.event is not None
        return {
            self.unit: self.number,
            "ok": True,
            "eventType": self.event.event_type,
            "eventId": self.event.event_id,
        }


def check(data: bytes, *, topic: str | None, topics: Topics, not_after: datetime) -> list[Verdict]:
    """The verdict on each event in `data`, in input order."""
    verdicts = []
    for unit, number, value in split_events(data):
        try:
            event = parse_event(value, topic, topics=topics, not_after=not_after)
        except InvalidEvent as exc:
            verdicts.append(Verdict(unit, number, rejection=exc))
        else:
            verdicts.append(Verdict(unit, number, event=event))
    return verdicts


def split_events(data: bytes) -> list[tuple[Literal["line", "item"], int, bytes]]:
    """The events in `data`: the items of one JSON array, else its non-blank lines.

    A file is an array only if it is one well-formed JSON array as a whole; anything else
    (a line that is an array among others, a truncated array) is read line by line, so each
    broken line gets its own reason.
    """
    items = _array_items(data)
    if items is not None:
        return [("item", n, item) for n, item in enumerate(items, 1)]
    lines = data.split(b"\n")
    return [("line", n, line) for n, line in enumerate(lines, 1) if line.strip()]


def _ignore(text: str) -> None:
    """Numbers are not converted while finding the items (`1e999999` or 5,000 digits are fine)."""


_SPANS: Final = json.JSONDecoder(parse_float=_ignore, parse_int=_ignore, parse_constant=_ignore)


def _skip(text: str, at: int) -> int:
    match = _WHITESPACE.match(text, at)
    assert match is not None  # `*` always matches
    return match.end()


def _array_items(data: bytes) -> list[bytes] | None:
    """The exact text of each item if `data` is one JSON array, else None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    at = _skip(text, 0)
    if not text.startswith("[", at):
        return None
    at = _skip(text, at + 1)
    items: list[bytes] = []
    if text.startswith("]", at):
        return items if _skip(text, at + 1) == len(text) else None
    while True:
        try:
            _, end = _SPANS.raw_decode(text, at)
        except (ValueError, RecursionError):
            return None
        items.append(text[at:end].encode())
        at = _skip(text, end)
        if text.startswith(",", at):
            at = _skip(text, at + 1)
        elif text.startswith("]", at):
            return items if _skip(text, at + 1) == len(text) else None
        else:
            return None
