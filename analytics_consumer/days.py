"""Event time as integer milliseconds, and UTC days.

Every figure is placed in time by the event's own occurrence timestamp (`initiatedAt`,
`completedAt`, `failedAt`, `refundedAt`), never by the envelope's publish `timestamp`, the
Kafka record time or the wall clock: a replay of last week's events lands on last week's
days, and the same events always give the same report. Times are kept as integer
milliseconds since the Unix epoch (sub-millisecond digits are dropped, never rounded up)
so that durations and day boundaries are exact integer arithmetic in Python and in SQL.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Final

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
DAY_MS: Final = 86_400_000
ALL_TIME: Final = (-(2**62), 2**62)
"""A millisecond range that holds every representable event time."""

_MS: Final = timedelta(milliseconds=1)
_EPOCH_ORDINAL: Final = EPOCH.date().toordinal()
_DAY_TEXT: Final = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime, exactly (no float involved)."""
    return (moment - EPOCH) // _MS


def day_number(ms: int) -> int:
    """Days since the epoch of the UTC day that contains `ms`."""
    return ms // DAY_MS


def day_text(number: int) -> str:
    """`20440` → `"2025-12-18"`."""
    return date.fromordinal(_EPOCH_ORDINAL + number).isoformat()


def day_of(ms: int) -> str:
    """The UTC day (`YYYY-MM-DD`) that contains `ms`."""
    return day_text(day_number(ms))


def parse_day(text: str) -> str:
    """Validate a `YYYY-MM-DD` day; raises ValueError with a readable message otherwise."""
    if not _DAY_TEXT.match(text):
        raise ValueError(f"expected a day as YYYY-MM-DD, got {text!r}")
    return date.fromisoformat(text).isoformat()


def day_range(day: str | None) -> tuple[int, int]:
    """The half-open millisecond range of a UTC day, or of all time for None."""
    if day is None:
        return ALL_TIME
    start = (date.fromisoformat(day).toordinal() - _EPOCH_ORDINAL) * DAY_MS
    return start, start + DAY_MS


def iso(ms: int) -> str:
    """ISO 8601 UTC text of `ms` (`2025-12-18T10:30:00.000Z`)."""
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
