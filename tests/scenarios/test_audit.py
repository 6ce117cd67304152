"""An auditor asks for one day's payment events, as analytics kept them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dreamscape_dev.testing import builders
from tests.scenarios.fleet import Fleet

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 5, 23, 59, 0, tzinfo=UTC)


def test_the_audit_export_of_a_day_holds_that_days_events_with_their_envelopes(
    services: Fleet, tmp_path: Path
) -> None:
    """The export of 2026-03-05 holds its two events, envelope and Kafka coordinates included, and not the next day's refund."""
    ids = {"paymentId": "pay_audit_1", "bookingId": "booking_audit_1", "userId": "usr_audit_1"}
    initiated = builders.event("payment.initiated", at=START, **ids)
    initiated["metadata"] = {"ip": "203.0.113.7", "channel": "web"}
    completed = builders.event("payment.completed", at=START + timedelta(seconds=30), **ids)
    refunded = builders.event(
        "payment.refunded", at=START + timedelta(hours=2), refundId="refund_audit_1", **ids
    )
    services.publish([initiated, completed, refunded])

    out = tmp_path / "audit.jsonl"
    done = services.analytics(
        "audit", "export", "--from", "2026-03-05", "--to", "2026-03-05", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    mine = {line["eventId"]: line for line in lines if line["paymentId"] == "pay_audit_1"}
    assert set(mine) == {initiated["eventId"], completed["eventId"]}
    first = mine[initiated["eventId"]]
    assert first["envelope"]["metadata"] == {"ip": "203.0.113.7", "channel": "web"}
    assert first["envelope"]["correlationId"] == initiated["correlationId"]
    assert first["envelope"]["source"] == "payment-service"
    assert first["kafka"]["topic"] == services.topics.for_event("payment.initiated")
    assert first["kafka"]["key"] == "pay_audit_1"
    assert isinstance(first["kafka"]["offset"], int)
    assert mine[completed["eventId"]]["envelope"]["causationId"] == completed["causationId"]
