"""The text report reads like the dashboard: separators, currency decimals, durations, no raw seconds."""

from __future__ import annotations

import re
from decimal import Decimal
from html import escape

from analytics_consumer import dashboard, formats
from analytics_consumer.alerts import ALERT_NAMES, Alert
from analytics_consumer.figures import (
    Abandonment,
    DaySummary,
    Delays,
    Durations,
    Figures,
    Initiation,
    RefundsVsOriginal,
)
from analytics_consumer.report import ALERT_TITLES, report_text

RAW_SECONDS = re.compile(r"\d{4,}\.\d{3}")


def operator_figures() -> Figures:
    """Figures shaped like the demo's: big JPY totals, days of refunds only, a long wait."""
    return Figures(
        day=None,
        latest_event_ms=1_766_880_432_728,
        events={"payment.initiated": 2188, "payment.completed": 1840, "payment.failed": 313},
        refunded_payments=212,
        revenue={"EUR": 5_464_809_500, "JPY": 70_586_900_000},
        completed_by_currency={"EUR": 1266, "JPY": 86},
        refunded={"EUR": 516_240_900, "JPY": 7_149_730_000},
        medians={"EUR": Decimal("310.50"), "JPY": Decimal("61200")},
        methods={"credit_card": 992, "bank_transfer": 138},
        revenue_by_method={"credit_card": {"EUR": 3_000_000_000, "JPY": 40_000_000_000}},
        failure_reasons={"card_declined": 141, "insufficient_funds": 64},
        durations=Durations(1840, 12_500, 103_700, 179_990, (256, 442, 870, 23, 68, 123, 58, 0)),
        delays=Delays(120_000, slow=70, pending=35, longest_ms=825_911_929),
        unusual_amounts={"EUR": 6, "JPY": 1},
        failed_payments=300,
        recovered_payments=20,
        initiated_amount={"EUR": 6_100_000_000, "JPY": 80_000_000_000},
        initiated_by_currency={"EUR": 1500, "JPY": 100},
        initiation=Initiation(2188, 864_000_000),
        refund_reasons={"requested_by_customer": 150, "duplicate": 40, "fraudulent": 22},
        refunds_vs_original=RefundsVsOriginal(
            212,
            150,
            58,
            1,
            3,
            {"EUR": 516_240_900, "JPY": 7_149_730_000},
            {"EUR": 700_000_000, "JPY": 9_000_000_000},
        ),
        abandoned=Abandonment(
            17, {"bank_transfer": 9, "credit_card": 8}, {"EUR": 41_250_000, "JPY": 1_200_000_000}
        ),
        days=[
            DaySummary("2025-12-18", 1200, 1000, 170, 20, {"EUR": 3_000_000_000}),
            DaySummary("2025-12-21", 988, 840, 143, 52, {"JPY": 70_586_900_000}),
            DaySummary("2025-12-24", 0, 0, 0, 80, {}),
            DaySummary("2025-12-28", 0, 0, 0, 60, {}),
        ],
    )


def operator_alerts() -> list[Alert]:
    """The alerts of `operator_figures`, with the alert module's own messages."""
    return [
        Alert(
            "high_failure_rate",
            Decimal("13.71"),
            Decimal(5),
            "300 of 2188 payments failed (13.71%)",
        ),
        Alert(
            "processing_delay",
            Decimal("825911.929"),
            Decimal(120),
            "70 payments took longer than 120 s, 35 are still waiting for an outcome",
        ),
        Alert("unusual_amounts", Decimal(7), Decimal(0), "unusual amounts: 6 in EUR, 1 in JPY"),
        Alert("a_future_alert", Decimal("2.5"), Decimal(1), "something new happened"),
    ]


class TestReportText:
    def test_counts_and_amounts_have_separators_and_currency_decimals(self) -> None:
        """Counts and money read `2,188` and `7,058,690 JPY` / `546,480.95 EUR`, as on the dashboard."""
        text = report_text(operator_figures(), operator_alerts())
        assert "2,188" in text
        assert "7,058,690 JPY" in text
        assert "546,480.95 EUR" in text
        assert "310.50 EUR" in text
        assert "61,200 JPY" in text
        assert "7058690" not in text

    def test_durations_read_in_units_never_raw_seconds(self) -> None:
        """The time to complete and the delay alert read `1 min 44 s`, `9 d 13 h`, `2 min`, never `825911.929`."""
        text = report_text(operator_figures(), operator_alerts())
        assert RAW_SECONDS.search(text) is None, RAW_SECONDS.search(text)
        assert "1 min 44 s" in text
        assert "9 d 13 h" in text
        assert "2 min" in text

    def test_alerts_read_in_their_unit_with_their_counts(self) -> None:
        """Each alert line names the alert, its value against its threshold in its unit, and formatted counts."""
        text = report_text(operator_figures(), operator_alerts())
        lines = [line for line in text.splitlines() if line.lstrip().startswith("!")]
        assert len(lines) == 4
        assert "high_failure_rate" in lines[0]
        for shown in ("13.71%", "above 5%", "300 of 2,188"):
            assert shown in lines[0], shown
        for shown in ("9 d 13 h", "70 payments", "35 are still waiting"):
            assert shown in lines[1], shown
        assert "complete or to fail" in lines[1]
        assert "something new happened" in lines[3]

    def test_the_report_and_the_dashboard_show_the_same_texts(self) -> None:
        """Every amount, count and duration of the text report's money and timing lines appears verbatim on the dashboard."""
        figures, alerts = operator_figures(), operator_alerts()
        text, page = report_text(figures, alerts), dashboard.render(figures, alerts)
        for shown in ("546,480.95 EUR", "7,058,690 JPY", "61,200 JPY", "1 min 44 s", "9 d 13 h"):
            assert shown in text, shown
            assert shown in page, shown

    def test_abandonment_initiation_and_refunds_have_their_rows_in_both(self) -> None:
        """Abandoned payments, the initiation rate, the average initiated amount, refunds against their payments and refund reasons read alike in the report and on the dashboard."""
        figures, alerts = operator_figures(), operator_alerts()
        text, page = report_text(figures, alerts), dashboard.render(figures, alerts)
        for shown in (
            "17 payments initiated and never finished",
            "4,125.00 EUR \u00b7 120,000 JPY",
            "9.12 payments per hour (2,188 over 10 d)",
            "406.67 EUR",
            "70,000.00 EUR",
            "73.75%",
            "150 in full, 58 in part, 1 beyond the amount paid, 3 without their completion",
            "requested_by_customer",
            "300 failed payments from 313 failed attempts; 20 of them completed after all",
        ):
            assert shown in text, shown
            assert escape(shown) in page, shown
        assert "Abandonment:" in text
        assert "Abandoned payments" in page

    def test_every_alert_the_rules_raise_has_a_title_and_a_unit(self) -> None:
        """Each name in `ALERT_NAMES` reads with its own title and unit, so a new alert is not shown as a bare number."""
        assert set(ALERT_NAMES) <= set(ALERT_TITLES)
        assert set(ALERT_NAMES) <= set(formats.ALERT_UNITS)

    def test_the_gateway_alert_reads_as_a_share_of_the_outcomes(self) -> None:
        """`gateway_unavailable` reads as a percentage against its threshold, with the rule's own message."""
        alert = Alert(
            "gateway_unavailable",
            Decimal("60.00"),
            Decimal(50),
            "6 of 10 payment outcomes were gateway errors (60.00%: processing_error 6)",
        )
        text = report_text(operator_figures(), [alert])
        assert "gateway errors among the outcomes 60.00% above 50%" in text
        assert "processing_error 6" in text
