"""The dashboard as an operator reads it: every day drawn, formatted figures, nothing cut off, in Chromium."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from analytics_consumer import dashboard
from analytics_consumer.cli import main
from analytics_consumer.figures import DaySummary
from dreamscape_dev.simulator import SimulationConfig
from dreamscape_dev.testing.browser import HeadlessChromium, Rendered
from tests.analytics import independent
from tests.analytics.helpers import apply_all, engine_for, store_for
from tests.analytics.streams import as_inbound, in_batches, simulated
from tests.analytics.test_report_text import operator_alerts, operator_figures

RAW_SECONDS = re.compile(r"\d{4,}\.\d{3}")
UNSEPARATED = re.compile(r"(?<![\d.,:\-])\d{4,}(?![\d\-:])")
"""A count or amount of four digits or more without a separator (days and times excluded)."""

CONFIG = SimulationConfig(flows=300, seed=3, duplicate_rate=0.05, reorder_rate=0.2)

_PROBLEMS_JS = """
() => {
  const problems = [];
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > width) problems.push('the page scrolls sideways');
  for (const el of document.querySelectorAll('section, .tile, .tile b, .alert, .wide, table')) {
    if (el.scrollWidth > el.clientWidth + 1) problems.push('cut off: ' + el.textContent.slice(0, 60));
    const box = el.getBoundingClientRect();
    if (box.right > width) problems.push('past the right edge: ' + el.textContent.slice(0, 60));
  }
  for (const svg of document.querySelectorAll('svg.chart')) {
    const box = svg.getBoundingClientRect();
    const name = svg.querySelector('title').textContent;
    const texts = [...svg.querySelectorAll('text')].map(t => [t.textContent, t.getBoundingClientRect()]);
    for (const [text, r] of texts) {
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
        problems.push(name + ': "' + text + '" drawn outside the chart');
    }
    for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
      const [a, p] = texts[i], [b, q] = texts[j];
      const overlap = Math.min(p.right, q.right) - Math.max(p.left, q.left) > 1
        && Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top) > 1;
      if (overlap) problems.push(name + ': "' + a + '" overlaps "' + b + '"');
    }
  }
  return problems;
}
"""


def _day_labels(rendered: Rendered, title: str) -> list[str]:
    """The x-axis labels (days) drawn in the chart titled `title`, left to right."""
    chart = rendered.page.locator(
        "svg.chart", has=rendered.page.locator(f"title:text-is('{title}')")
    )
    texts: list[str] = chart.locator("text").evaluate_all("ts => ts.map(t => t.textContent)")
    return [t for t in texts if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t)]


def _assert_reads_like_an_operator_page(rendered: Rendered) -> str:
    """Shared checks: no raw seconds, no unseparated numbers, nothing cut off, no errors."""
    text: str = rendered.page.locator("body").inner_text()
    assert RAW_SECONDS.search(text) is None, RAW_SECONDS.search(text)
    assert UNSEPARATED.findall(text) == []
    problems: list[Any] = rendered.page.evaluate(_PROBLEMS_JS)
    assert problems == []
    assert rendered.errors == []
    return text


class TestDays:
    def test_the_calendar_runs_from_the_first_to_the_last_day_with_any_event(self) -> None:
        """Days without events between two days with events are filled with zeros; the last day (refunds only) stays."""
        days = dashboard.calendar(operator_figures().days)
        assert (days[0].day, days[-1].day) == ("2025-12-18", "2025-12-28")
        assert len(days) == 11
        assert days[1] == DaySummary("2025-12-19", 0, 0, 0, 0, {})
        assert days[-1].refunded_payments == 60

    def test_the_daily_charts_end_on_the_last_refund_day(self) -> None:
        """A day with refunds only is drawn: the payments-by-day chart has its point and both charts its label."""
        page = dashboard.render(operator_figures(), operator_alerts())
        assert "2025-12-28 refunded: 60" in page
        assert "2025-12-24 refunded: 80" in page
        assert page.count(">2025-12-28</text>") == 2


@pytest.mark.integration
class TestInChromium:
    def test_an_operator_reads_the_dashboard(
        self, chromium: HeadlessChromium, tmp_path: Path
    ) -> None:
        """Durations in units, separated amounts at their currency's decimals, every day drawn, nothing cut off."""
        path = tmp_path / "dashboard.html"
        path.write_text(dashboard.render(operator_figures(), operator_alerts()), encoding="utf-8")
        with chromium.open(path) as rendered:
            text = _assert_reads_like_an_operator_page(rendered)
            for shown in ("2,188", "7,058,690 JPY", "546,480.95 EUR", "9 d 13 h", "1 min 44 s"):
                assert rendered.visible(shown), shown
            assert "825911" not in text
            for title in ("Payments by day", "Success, failure and refund rates by day"):
                assert _day_labels(rendered, title)[-1] == "2025-12-28", title
            assert rendered.visible("The delay alert counts failures too")
            rendered.page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000

    def test_a_narrow_window_still_shows_everything(
        self, chromium: HeadlessChromium, tmp_path: Path
    ) -> None:
        """At 600 px wide (a laptop's half screen) no figure is cut off and the page does not scroll sideways."""
        path = tmp_path / "dashboard.html"
        path.write_text(dashboard.render(operator_figures(), operator_alerts()), encoding="utf-8")
        with chromium.open(path, width=600) as rendered:
            _assert_reads_like_an_operator_page(rendered)
            rendered.page.screenshot(path=str(tmp_path / "narrow.png"), full_page=True)

    def test_the_dashboard_of_a_simulated_stream(
        self,
        chromium: HeadlessChromium,
        sqlite_url: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """`analytics-consumer dashboard` over a simulated stream draws every day up to the last event's (a refund's) and reads like an operator page."""
        stream = as_inbound(simulated(CONFIG))
        engine = engine_for(sqlite_url)
        apply_all(store_for(engine, stream), in_batches(stream, 250))
        engine.dispose()
        monkeypatch.setenv("DATABASE_URL", sqlite_url)
        events = independent.distinct_events(simulated(CONFIG))
        last_day = max(independent.day(record) for record in events)
        path = tmp_path / "dashboard.html"
        assert main(["dashboard", "--out", str(path)]) == 0
        with chromium.open(path) as rendered:
            _assert_reads_like_an_operator_page(rendered)
            assert _day_labels(rendered, "Payments by day")[-1] == last_day
            rendered.page.screenshot(path=str(tmp_path / "simulated.png"), full_page=True)
