"""A Prometheus histogram cheap enough to observe once per record on the run loop's hot path.

prometheus_client's `Histogram.observe` takes a lock and increments two locked values per
call: about 1.2 µs, and event age and record age are two observations per record (the run
loop costs ~10 µs a record, docs/performance.md). This collector keeps plain counts per label
set, one writer (the run loop's thread, which emits every lifecycle event) adding to them
with a `bisect` and two additions, and builds the samples when Prometheus scrapes. The
exposition is the one `Histogram` writes: `_bucket{le}` (cumulative, le as `60.0`), `_count`,
`_sum`; no `_created`. A scrape during an observation may see a bucket one ahead of `_sum`:
every series still only grows.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString


class Child:
    """The counts of one label set: per bucket (the last one is +Inf) and the sum."""

    __slots__ = ("_bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count `value` in the first bucket whose upper bound is at least `value`."""
        self.counts[bisect_left(self._bounds, value)] += 1
        self.total += value


class FastHistogram:
    """A histogram `name` with `labelnames`, registered in `registry`; `labels()` gives a child."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._bounds = tuple(sorted(float(b) for b in buckets))
        self._les = [floatToGoString(b) for b in self._bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self._children: dict[tuple[str, ...], Child] = {}
        self._lock = threading.Lock()  # creating a child, and the scrape's copy of the dict
        registry.register(self)

    def labels(self, *values: str) -> Child:
        """The child of label `values` (created at zero on first use); callers keep it."""
        if len(values) != len(self._labelnames):
            raise ValueError(f"{self._name} takes labels {self._labelnames}, got {values}")
        with self._lock:
            return self._children.setdefault(values, Child(self._bounds))

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            self._name, self._documentation, labels=list(self._labelnames)
        )
        with self._lock:
            children = list(self._children.items())
        for values, child in children:
            running, buckets = 0, []
            for le, count in zip(self._les, list(child.counts), strict=True):
                running += count
                buckets.append((le, float(running)))
            family.add_metric(list(values), buckets, child.total)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self._name, self._documentation, labels=list(self._labelnames))
