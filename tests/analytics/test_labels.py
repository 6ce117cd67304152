"""Metric label values drawn from untrusted fields stay a bounded set."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from analytics_consumer.gauges import OTHER, AnalyticsGauges, bounded


class TestBounded:
    def test_known_values_stay_and_the_rest_beyond_the_cap_become_other(self) -> None:
        """Known values always keep their label; of the others the most frequent `cap` do; the remainder is summed under `other` (issue 10, finding 18)."""
        counts = {"credit_card": 5, "paypal": 1, "x1": 9, "x2": 7, "x3": 3, "x4": 3}
        assert bounded(counts, known={"credit_card", "paypal"}, cap=2) == {
            "credit_card": 5,
            "paypal": 1,
            "x1": 9,
            "x2": 7,
            OTHER: 6,
        }

    def test_nothing_folds_under_the_cap(self) -> None:
        """Below the cap every value keeps its label and no `other` appears."""
        assert bounded({"a": 1, "b": 2}, known=set(), cap=5) == {"a": 1, "b": 2}

    def test_ties_are_broken_by_name_so_labels_do_not_flap(self) -> None:
        """Equal counts keep the alphabetically first, the same on every refresh."""
        assert bounded({"b": 1, "a": 1, "c": 1}, known=set(), cap=1) == {"a": 1, OTHER: 2}


class TestGaugeSeries:
    def test_a_flood_of_distinct_error_codes_exports_a_bounded_number_of_series(self) -> None:
        """10,000 distinct errorCode values export at most cap + known + 1 series of failure_reasons."""
        registry = CollectorRegistry()
        gauges = AnalyticsGauges(registry, label_cap=20)
        gauges.failures_from({f"code_{n}": 1 for n in range(10_000)} | {"card_declined": 4})
        samples = [
            s for m in registry.collect() for s in m.samples if s.name.endswith("failure_reasons")
        ]
        labels = {s.labels["error_code"] for s in samples}
        assert len(labels) <= 20 + 1 + len(gauges.known_error_codes)
        assert OTHER in labels
        assert "card_declined" in labels
        assert sum(s.value for s in samples) == 10_004
