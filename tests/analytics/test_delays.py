"""What the processing-delay count counts: payments, once each, against the time-to-complete histogram."""

from __future__ import annotations

import pytest

from analytics_consumer.figures import DURATION_BUCKETS_S
from tests.analytics.helpers import report
from tests.analytics.test_payment_lifecycle import completed, counted, failed, initiated

pytestmark = pytest.mark.integration

SLOW_BUCKETS = len(DURATION_BUCKETS_S) - DURATION_BUCKETS_S.index(120)
"""Histogram buckets at or past the default 2 min threshold: 2-3 min, then 3 min or more."""


class TestSlowPayments:
    def test_a_payment_that_failed_late_then_completed_late_is_one_slow_payment(
        self, database_url: str
    ) -> None:
        """A card that failed after 2.5 min and another that completed after 4 min make one slow payment, not two."""
        engine = counted(
            database_url,
            [initiated("pay_1", 0), failed("pay_1", 2.5), completed("pay_1", 4)],
        )
        assert report(engine)["processing_delays"]["slow"] == 1

    def test_slow_completions_are_the_histograms_orange_buckets_and_slow_failures_add_to_them(
        self, database_url: str
    ) -> None:
        """Two late completions fill the buckets past the threshold; a late failure of another payment adds one to the delay count only."""
        engine = counted(
            database_url,
            [
                *(initiated(pid, 0) for pid in ("a", "b", "c", "d")),
                completed("a", 2.5),
                completed("b", 3.5),
                completed("c", 0.5),
                failed("d", 3),
            ],
        )
        document = report(engine)
        histogram = document["time_to_complete_seconds"]["histogram"]
        orange = sum(bucket["count"] for bucket in histogram[-SLOW_BUCKETS:])
        assert orange == 2
        assert document["processing_delays"]["slow"] == orange + 1
