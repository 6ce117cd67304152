"""The report's figures recomputed from raw simulated records, without analytics_consumer code.

Reads each record's JSON with `Decimal` numbers, keeps the first copy of each eventId (the
records `common.parsing` rejects are poison and are left out), and computes every figure
with plain Python: sums, sorting, nearest-rank percentiles. Tests compare this with what the
consumer stored, so a mistake has to be made twice, independently, to go unnoticed.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from common.errors import InvalidEvent
from common.parsing import parse_event
from common.records import OutboundRecord

PLACES = {"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "JPY": 0}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OCCURRED = {
    "payment.initiated": "initiatedAt",
    "payment.completed": "completedAt",
    "payment.failed": "failedAt",
    "payment.refunded": "refundedAt",
}


def distinct_events(records: Iterable[OutboundRecord]) -> list[dict[str, Any]]:
    """Valid events, first copy per eventId, in publish order."""
    seen: dict[str, dict[str, Any]] = {}
    for record in records:
        try:
            parse_event(record.value, record.topic)
        except InvalidEvent:
            continue
        document = json.loads(record.value or b"", parse_float=Decimal, parse_int=Decimal)
        seen.setdefault(document["eventId"], document)
    return list(seen.values())


def ms(text: str) -> int:
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(milliseconds=1)


def day(event: dict[str, Any]) -> str:
    moment = datetime.fromisoformat(event["payload"][OCCURRED[event["eventType"]]])
    return moment.astimezone(UTC).date().isoformat()


def quantized(value: Decimal, currency: str) -> str:
    exact = value.quantize(Decimal(1).scaleb(-PLACES[currency]), rounding=ROUND_HALF_EVEN)
    return format(exact, "f")


def percent(part: int, whole: int) -> float | None:
    if not whole:
        return None
    return float((Decimal(part) * 100 / whole).quantize(Decimal("0.01"), ROUND_HALF_EVEN))


def rank(sorted_values: list[int], p: int) -> float:
    return sorted_values[max(1, math.ceil(len(sorted_values) * p / 100)) - 1] / 1000


def figures(events: list[dict[str, Any]], only_day: str | None = None) -> dict[str, Any]:
    """The report's figures for all time or one UTC day, in the report's JSON shapes."""
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_type[event["eventType"]].append(event)

    def in_scope(event: dict[str, Any]) -> bool:
        return only_day is None or day(event) == only_day

    initiated = [e for e in by_type["payment.initiated"] if in_scope(e)]
    completed = [e for e in by_type["payment.completed"] if in_scope(e)]
    failed = [e for e in by_type["payment.failed"] if in_scope(e)]
    refunds = [e for e in by_type["payment.refunded"] if in_scope(e)]
    first_refund: dict[str, dict[str, Any]] = {}
    for event in by_type["payment.refunded"]:
        pid = event["payload"]["paymentId"]
        if pid not in first_refund or ms(event["payload"]["refundedAt"]) < ms(
            first_refund[pid]["payload"]["refundedAt"]
        ):
            first_refund[pid] = event
    refunded_payments = sum(1 for e in first_refund.values() if in_scope(e))
    first_failure: dict[str, dict[str, Any]] = {}
    for event in by_type["payment.failed"]:
        pid = event["payload"]["paymentId"]
        if pid not in first_failure or ms(event["payload"]["failedAt"]) < ms(
            first_failure[pid]["payload"]["failedAt"]
        ):
            first_failure[pid] = event
    failed_payments = sum(1 for e in first_failure.values() if in_scope(e))

    amounts: dict[str, list[Decimal]] = defaultdict(list)
    for event in completed:
        amounts[event["payload"]["currency"]].append(event["payload"]["amount"])
    refunded: dict[str, Decimal] = defaultdict(Decimal)
    for event in refunds:
        refunded[event["payload"]["currency"]] += event["payload"]["refundAmount"]
    medians = {}
    for currency, values in amounts.items():
        ordered = sorted(values)
        lower, upper = ordered[(len(ordered) - 1) // 2], ordered[len(ordered) // 2]
        medians[currency] = quantized((lower + upper) / 2, currency)

    initiated_at = {e["payload"]["paymentId"]: e for e in by_type["payment.initiated"]}
    durations = sorted(
        ms(e["payload"]["completedAt"])
        - ms(initiated_at[e["payload"]["paymentId"]]["payload"]["initiatedAt"])
        for e in completed
        if e["payload"]["paymentId"] in initiated_at
    )
    by_method: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for event in completed:
        origin = initiated_at.get(event["payload"]["paymentId"])
        method = origin["payload"]["paymentMethod"] if origin else "(unknown)"
        by_method[method][event["payload"]["currency"]] += event["payload"]["amount"]

    return {
        "payments_initiated": len(initiated),
        "payments_completed": len(completed),
        "payments_failed": failed_payments,
        "failed_attempts": len(failed),
        "payments_refunded": refunded_payments,
        "events": dict(Counter(e["eventType"] for e in events if in_scope(e))),
        "success_rate": percent(len(completed), len(initiated)),
        "failure_rate": percent(failed_payments, len(initiated)),
        "refund_rate": percent(refunded_payments, len(completed)),
        "revenue": {c: quantized(sum(v, Decimal(0)), c) for c, v in sorted(amounts.items())},
        "refunded_amount": {c: quantized(v, c) for c, v in sorted(refunded.items())},
        "average_amount": {
            c: quantized(sum(v, Decimal(0)) / len(v), c) for c, v in sorted(amounts.items())
        },
        "median_amount": dict(sorted(medians.items())),
        "payment_methods": dict(
            sorted(Counter(e["payload"]["paymentMethod"] for e in initiated).items())
        ),
        "failure_reasons": dict(sorted(Counter(e["payload"]["errorCode"] for e in failed).items())),
        "revenue_by_method": {
            m: {c: quantized(v, c) for c, v in sorted(by_c.items())}
            for m, by_c in sorted(by_method.items())
        },
        "time_to_complete_seconds": {
            "count": len(durations),
            "p50": rank(durations, 50) if durations else None,
            "p95": rank(durations, 95) if durations else None,
            "max": durations[-1] / 1000 if durations else None,
        },
    }


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The part of a report JSON object that `figures` computes."""
    wanted = figures([])
    picked = {key: report[key] for key in wanted}
    ttc = report["time_to_complete_seconds"]
    picked["time_to_complete_seconds"] = {k: ttc[k] for k in ("count", "p50", "p95", "max")}
    return picked
