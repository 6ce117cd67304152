"""DLQ letters read back: one per original record, however many times it was written."""

from __future__ import annotations

from datetime import UTC, datetime

from common import dlq
from common.records import Record


def _letter(partition: int, offset: int, dlq_offset: int) -> dlq.DlqEntry:
    original = Record("t.payment.completed", partition, offset, b"k", b"not json", (), None)
    written = dlq.to_dlq_record(
        dlq.DeadLetter(original, None, "not_json", "bad", 1),
        dlq_topic="dlq",
        group="g",
        failed_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    back = Record("dlq", 0, dlq_offset, written.key, written.value, written.headers, None)
    return dlq.read_entry(back)


class TestFirstCopies:
    def test_a_record_dead_lettered_twice_counts_once_with_its_first_letter(self) -> None:
        """Two letters for the same original (topic, partition, offset) collapse to the first one."""
        entries = [_letter(0, 5, 0), _letter(1, 5, 1), _letter(0, 5, 2)]
        kept = dlq.first_copies(entries)
        assert [e.ref for e in kept] == ["0:0", "0:1"]
        assert [e.origin for e in kept] == [
            ("t.payment.completed", 0, 5),
            ("t.payment.completed", 1, 5),
        ]


def _timestamp_header(create_time_ms: int) -> list[bytes | None]:
    original = Record("t.payment.completed", 0, 7, b"k", b"x", (), create_time_ms)
    written = dlq.to_dlq_record(
        dlq.DeadLetter(original, None, "not_json", "bad", 1),
        dlq_topic="dlq",
        group="g",
        failed_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    return [v for k, v in written.headers if k == dlq.H_TIMESTAMP]


class TestHeaders:
    def test_an_out_of_range_create_time_never_fails_the_letter(self) -> None:
        """A CreateTime of 10**16 ms (a producer sending microseconds) still yields a letter, its raw value kept (issue 10, finding 9)."""
        assert _timestamp_header(10**16) == [b"10000000000000000"]

    def test_a_create_time_in_range_is_iso_8601(self) -> None:
        """The usual case: the original CreateTime as an ISO 8601 UTC timestamp."""
        assert _timestamp_header(1_766_053_800_000) == [b"2025-12-18T10:30:00+00:00"]
