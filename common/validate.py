"""`dreamscape validate`: would the consumers accept these events, and if not, why?

The answer must be the consumers' own, so each event goes through `common.parsing.parse_event`
with the run loop's arguments (the topic, the clock plus `MAX_CLOCK_SKEW_SECONDS`), never
through the JSON Schema in `contracts/`: the schema cannot say everything the parser decides
(minor units, the clock), and an operator asking why a record was dead-lettered needs the
reason the DLQ shows. A service's own pre-handler check (analytics' exact-amount check) is
not run: the runtime does not import the services.

The parser stops at an event's first problem, which is the verdict (the DLQ's reason). The
others are found by the parser too: the field it names is replaced by a placeholder it
accepts (or dropped, when optional) and the event parsed again, until it passes or the
problem is one no placeholder can stand for (no payload, no eventType). Every problem is thus
worded as the consumers would word it, with no second set of rules to drift.

Input is one JSON array of events, or a sequence of JSON documents: one per line (JSON
Lines), pretty-printed over many lines (the spec's own format), or both. A document is
numbered by the line it starts on. An array's items, and each document, are handed to the
parser as the exact text they have in the file, so amounts keep their decimal text.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import jiter
import msgspec
from babel.numbers import get_currency_precision

from common.errors import InvalidEvent
from common.events import ISO_4217_CODES, PaymentEvent
from common.parsing import parse_event
from common.topics import Topics

Unit = Literal["line", "item"]

_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")
_BLANKS: Final = re.compile(r"[ \t\r]*")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome for one event: where it was in the input, and the event or its problems."""

    unit: Unit
    number: int
    """1-based: the line the event starts on, or the position in the array."""
    event: PaymentEvent | None = None
    rejection: InvalidEvent | None = None
    """The consumers' verdict: the first problem, the reason the DLQ would show."""
    more: tuple[InvalidEvent, ...] = ()
    """The event's other problems, in the order the parser meets them."""

    @property
    def ok(self) -> bool:
        return self.rejection is None

    def text(self) -> str:
        """`line 3: ok payment.failed <eventId>`, or `line 4: <reason>: <detail>` then `also` lines."""
        where = f"{self.unit} {self.number}"
        if self.rejection is not None:
            also = "".join(f"\n{where}: also {problem}" for problem in self.more)
            return f"{where}: {self.rejection}{also}"
        assert self.event is not None
        return f"{where}: ok {self.event.event_type} {self.event.event_id}"

    def as_json(self) -> dict[str, Any]:
        """The verdict as one JSON object, the rejection's fields named as in the DLQ."""
        if self.rejection is not None:
            return {
                self.unit: self.number,
                "ok": False,
                "reason": self.rejection.reason,
                "field": self.rejection.field,
                "detail": self.rejection.detail,
                "problems": [_problem(p) for p in (self.rejection, *self.more)],
            }
        assert self.event is not None
        return {
            self.unit: self.number,
            "ok": True,
            "eventType": self.event.event_type,
            "eventId": self.event.event_id,
        }


def _problem(rejection: InvalidEvent) -> dict[str, str | None]:
    return {"reason": rejection.reason, "field": rejection.field, "detail": rejection.detail}


def check(data: bytes, *, topic: str | None, topics: Topics, not_after: datetime) -> list[Verdict]:
    """The verdict on each event in `data`, in input order."""
    verdicts = []
    for unit, number, value in split_events(data):
        try:
            event = parse_event(value, topic, topics=topics, not_after=not_after)
        except InvalidEvent as exc:
            more = other_problems(value, exc, topic=topic, topics=topics, not_after=not_after)
            verdicts.append(Verdict(unit, number, rejection=exc, more=more))
        else:
            verdicts.append(Verdict(unit, number, event=event))
    return verdicts


# --- every problem -------------------------------------------------------------------------

_MAX_PROBLEMS: Final = 32
"""A bound on the parser runs per event (a payload has fewer than 10 fields)."""

_NO_FURTHER: Final = frozenset({"empty_value", "not_json", "not_an_object", "unknown_event_type"})
"""Rejections of the whole document: there is no field to look past."""

_OPTIONAL: Final = frozenset({"correlationId", "causationId", "metadata"})
_TIME: Final = "2020-01-01T00:00:00Z"
_PLACEHOLDERS: Final[dict[str, object]] = {
    "eventId": "00000000-0000-4000-8000-000000000000",
    "version": "1.0",
    "timestamp": _TIME,
    "source": "validate",
    "amount": 1,  # an integer has no decimals for any currency
    "refundAmount": 1,
    **dict.fromkeys(("initiatedAt", "completedAt", "failedAt", "refundedAt"), _TIME),
    **dict.fromkeys(
        (
            "paymentId",
            "bookingId",
            "userId",
            "paymentMethod",
            "transactionId",
            "errorCode",
            "errorMessage",
            "refundId",
            "reason",
        ),
        "x",
    ),
}
"""Values the parser accepts in each field, standing in for a bad one to look further."""

_ENCODER: Final = msgspec.json.Encoder(decimal_format="number")


def other_problems(
    value: bytes,
    first: InvalidEvent,
    *,
    topic: str | None,
    topics: Topics,
    not_after: datetime,
) -> tuple[InvalidEvent, ...]:
    """The problems of `value` after `first` (the parser's verdict), each in the parser's words."""
    if first.reason in _NO_FURTHER:
        return ()
    try:
        document = jiter.from_json(value, float_mode="decimal")
    except ValueError:
        return ()
    if type(document) is not dict:
        return ()
    found: list[InvalidEvent] = []
    seen: set[str] = set()
    rejection = first
    for _ in range(_MAX_PROBLEMS):
        if rejection.field is None or rejection.field in seen:
            break  # nothing named to stand in for, or the stand-in did not help
        seen.add(rejection.field)
        if rejection.reason == "event_type_mismatch":
            topic = None  # judge the rest by the event's own eventType
        elif not _stand_in(document, rejection.field):
            break
        try:
            parse_event(_ENCODER.encode(document), topic, topics=topics, not_after=not_after)
        except InvalidEvent as exc:
            rejection = exc
        else:
            break
        if rejection.field is not None and rejection.field in seen:
            break
        found.append(rejection)
    return tuple(found)


def _stand_in(document: dict[str, Any], field: str) -> bool:
    """Replace the bad `field` (a wire path) by a placeholder; False when none can stand in."""
    *parents, name = field.split(".")
    parent: Any = document
    for part in parents:
        parent = parent.get(part) if type(parent) is dict else None
    if type(parent) is not dict:
        return False
    if name in _OPTIONAL:
        parent.pop(name, None)
    elif name == "currency":
        parent[name] = _currency_meant(parent.get(name))
    elif name in _PLACEHOLDERS:
        parent[name] = _PLACEHOLDERS[name]
    else:  # `payload` itself, `eventType`, a field this module does not know
        return False
    return True


def _currency_meant(currency: object) -> str:
    """`EUR` for `eur`; for no code at all, the one with most decimals (only what no currency
    allows is then refused in the amount)."""
    if isinstance(currency, str) and currency.isascii() and currency.upper() in ISO_4217_CODES:
        return currency.upper()
    return _most_decimals()


@functools.cache
def _most_decimals() -> str:
    most: str = max(sorted(ISO_4217_CODES), key=get_currency_precision)
    return most


# --- splitting the input ---------------------------------------------------------------------


def split_events(data: bytes) -> list[tuple[Unit, int, bytes]]:
    """The events in `data`: the items of one JSON array, else its JSON documents.

    A file is an array only if it is one well-formed JSON array as a whole. Otherwise it is
    read as a sequence of documents, each from its first line: one per line, pretty-printed,
    or several on a line. A document that does not parse, or is followed on its last line by
    anything but another document, is one rejected event running up to the next line that
    opens a document at its first column (a pretty-printed document's inner lines are
    indented), so a broken JSON line gets its own reason and a broken pretty-printed document
    one reason, not one per line.
    """
    items = _array_items(data)
    if items is not None:
        return [("item", n, item) for n, item in enumerate(items, 1)]
    return list(_documents(data.decode("utf-8", "surrogateescape")))


def _documents(text: str) -> Iterator[tuple[Unit, int, bytes]]:
    line, counted = 1, 0
    at = _skip(text, 0)
    while at < len(text):
        line += text.count("\n", counted, at)
        counted = at
        end = _document_end(text, at)
        if end is None:  # broken: up to the next line that opens a document
            stop = _next_opening_line(text, at)
            end = _end_of_last_line(text, at, stop)
            after = stop
        else:
            after = end
        yield "line", line, text[at:end].encode("utf-8", "surrogateescape")
        at = _skip(text, after)


def _document_end(text: str, at: int) -> int | None:
    """Where the document starting at `at` ends, if it parses and ends its line (or another
    document follows on that line)."""
    try:
        _, end = _SPANS.raw_decode(text, at)
    except (ValueError, RecursionError):
        return None
    rest = _BLANKS.match(text, end)
    assert rest is not None  # `*` always matches
    following = rest.end()
    if following == len(text) or text[following] in "\n{[":
        return end
    return None


def _next_opening_line(text: str, at: int) -> int:
    """The start of the first line after `at`'s that begins with a character other than
    whitespace or a closing bracket, or the end of `text`."""
    newline = text.find("\n", at)
    while newline != -1:
        start = newline + 1
        if start < len(text) and text[start] not in " \t\r\n}]":
            return start
        newline = text.find("\n", start)
    return len(text)


def _end_of_last_line(text: str, at: int, stop: int) -> int:
    """The end (before its newline) of the last non-blank line in `text[at:stop]`."""
    last = at + len(text[at:stop].rstrip())
    newline = text.find("\n", last, stop)
    return stop if newline == -1 else newline


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
