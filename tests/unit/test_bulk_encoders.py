"""The values `common.bulk` writes: the text SQLAlchemy's column types read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from common import bulk


def test_times_already_in_utc_are_written_as_any_other_time_is() -> None:
    """SQLite's shorter way for UTC times gives the general conversion's text, microseconds or none, and other zones still go through the conversion."""
    sqlite = bulk._ENCODERS["sqlite"]
    for moment in (
        datetime(2025, 12, 18, 10, 30, tzinfo=UTC),
        datetime(2025, 12, 18, 10, 30, 1, 5, tzinfo=UTC),
        datetime(2025, 12, 18, 12, 30, tzinfo=timezone(timedelta(hours=2))),
    ):
        general = moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        assert sqlite.time(moment) == general
    assert sqlite.time(None) is None
