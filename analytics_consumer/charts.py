"""Inline SVG charts, drawn in Python: no JavaScript, no fonts or files fetched.

Each function returns one `<svg>` element sized by its `viewBox` (it scales to the page
width) with a `<title>` for screen readers and `<title>` tooltips on the marks. Text is
escaped; numbers are formatted by the caller, so the charts show exactly what the report
says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from itertools import count
from math import ceil, floor, log10
from typing import Final

WIDTH: Final = 760
PALETTE: Final = (
    "#3366cc",
    "#dc7633",
    "#2e8b57",
    "#8e44ad",
    "#c0392b",
    "#16a085",
    "#7f8c8d",
    "#d4ac0d",
)
INK: Final = "#2b2b2b"
GRID: Final = "#e3e3e3"
_ids = count(1)


def _svg(title: str, height: int, body: str) -> str:
    ident = f"chart-{next(_ids)}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-labelledby="{ident}" class="chart">'
        f'<title id="{ident}">{escape(title)}</title>{body}</svg>'
    )


def _text(
    x: float, y: float, content: str, *, anchor: str = "start", size: int = 12, fill: str = INK
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{fill}">{escape(content)}</text>'
    )


def _empty(title: str) -> str:
    return _svg(title, 60, _text(WIDTH / 2, 35, "No data yet", anchor="middle", fill="#888"))


CHAR_W: Final = 7.2
"""A generous width of one character of 12 px text, to size label columns without a font."""


def _lines(label: str, width: int) -> list[str]:
    """`label` broken at spaces into lines of at most `width` characters (a longer word stays whole)."""
    lines: list[str] = []
    for word in label.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def bar_chart(
    title: str, items: Sequence[tuple[str, float, str]], *, color: str = PALETTE[0]
) -> str:
    """Horizontal bars: (label, value, shown text) per row, longest first as given.

    The label column is as wide as the longest label, up to 40% of the chart; a longer label
    wraps onto more lines (free-text refund reasons), so no label is cut off.
    """
    if not items:
        return _empty(title)
    widest = max(len(label) for label, _, _ in items)
    label_w = int(min(max(120, widest * CHAR_W + 16), WIDTH * 0.4))
    text_w = int(max(150, max(len(shown) for _, _, shown in items) * CHAR_W + 12))
    per_line = int((label_w - 12) / CHAR_W)
    area = WIDTH - label_w - text_w
    top = max(value for _, value, _ in items) or 1
    parts = []
    y = 8
    for label, value, shown in items:
        lines = _lines(label, per_line)
        row_h = max(28, 15 * len(lines) + 10)
        bar_y = y + (row_h - 28) / 2
        length = max(1.0, area * value / top)
        first = bar_y + 15 - 7.5 * (len(lines) - 1)
        for number, line in enumerate(lines):
            parts.append(_text(label_w - 10, first + 15 * number, line, anchor="end"))
        parts.append(
            f'<rect x="{label_w}" y="{bar_y:.1f}" width="{length:.1f}" height="20" rx="3" '
            f'fill="{color}"><title>{escape(f"{label}: {shown}")}</title></rect>'
        )
        parts.append(_text(label_w + length + 6, bar_y + 15, shown))
        y += row_h
    return _svg(title, y + 8, "".join(parts))


def stacked_bars(
    title: str, rows: Sequence[tuple[str, str, Sequence[tuple[str, float]]]], legend: Sequence[str]
) -> str:
    """One 100% bar per row (label, total text, parts), parts coloured by their legend entry."""
    if not rows:
        return _empty(title)
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(legend)}
    label_w, text_w, row_h = 70, 170, 34
    area = WIDTH - label_w - text_w
    parts = []
    for index, (label, total, pieces) in enumerate(rows):
        y, x = 8 + index * row_h, float(label_w)
        whole = sum(value for _, value in pieces) or 1
        parts.append(_text(label_w - 10, y + 17, label, anchor="end", size=13))
        for name, value in pieces:
            share = area * value / whole
            tip = f"{label} {name}: {value / whole:.1%}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{share:.1f}" height="24" fill="{colours[name]}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            x += share
        parts.append(_text(label_w + area + 8, y + 17, total))
    legend_y = 16 + len(rows) * row_h
    for index, name in enumerate(legend):
        lx = label_w + (index % 4) * 150
        ly = legend_y + (index // 4) * 20
        parts.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{colours[name]}"/>')
        parts.append(_text(lx + 18, ly + 11, name))
    height = legend_y + ((len(legend) + 3) // 4) * 20 + 6
    return _svg(title, height, "".join(parts))


def nice_top(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above `value` (an axis top)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** floor(log10(value))
    return float(next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value))


def _percent(value: float) -> str:
    return f"{value:g}%"


def _legend(
    x0: int, y0: int, items: Sequence[tuple[str, str, bool]], *, width: int
) -> tuple[str, int]:
    """Swatches and names (name, colour, dashed line?) wrapped to `width`; the svg and its height."""
    parts, x, y = [], x0, y0
    for name, colour, dashed in items:
        item_w = 30 + 7 * len(name)
        if x > x0 and x + item_w > x0 + width:
            x, y = x0, y + 20
        if dashed:
            parts.append(
                f'<line x1="{x}" x2="{x + 14}" y1="{y + 6}" y2="{y + 6}" stroke="{colour}" '
                'stroke-width="2" stroke-dasharray="4 3"/>'
            )
        else:
            parts.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{colour}"/>')
        parts.append(_text(x + 18, y + 11, name))
        x += item_w
    return "".join(parts), y - y0 + 20


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    thresholds: Sequence[tuple[str, float, str]] = (),
    *,
    top: float = 100.0,
    shown: Callable[[float], str] = _percent,
) -> str:
    """Lines over `labels` (name, colour, values; None breaks a line) on a 0..`top` axis.

    Every label has its point; the axis names every label when they fit and otherwise every
    k-th one counted back from the last, so the last label is always named. `shown` formats
    the axis ticks and the points' tooltips; dashed `thresholds` are named in the legend.
    """
    if not labels:
        return _empty(title)
    left, right, upper, plot_h, inset = 56, 20, 12, 220, 40
    plot_w = WIDTH - left - right
    step = (plot_w - 2 * inset) / max(1, len(labels) - 1)

    def x(i: int) -> float:
        return left + (plot_w / 2 if len(labels) == 1 else inset + i * step)

    def y(v: float) -> float:
        return upper + plot_h * (1 - min(v, top) / top)

    parts = []
    for tick in range(0, 5):
        value = top * tick / 4
        parts.append(
            f'<line x1="{left}" x2="{WIDTH - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="{GRID}"/>'
        )
        parts.append(_text(left - 6, y(value) + 4, shown(value), anchor="end", size=11))
    for name, value, colour in thresholds:
        parts.append(
            f'<line x1="{left}" x2="{WIDTH - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'stroke="{colour}" stroke-dasharray="6 4"><title>{escape(name)}</title></line>'
        )
    label_w = 7 * max(len(label) for label in labels)
    every = max(1, ceil(label_w / step)) if len(labels) > 1 else 1
    last = len(labels) - 1
    for i, label in enumerate(labels):
        if (last - i) % every == 0:
            parts.append(_text(x(i), upper + plot_h + 18, label, anchor="middle", size=11))
    for name, colour, values in series:
        run: list[str] = []
        for i, point in enumerate([*values, None]):
            if point is not None:
                value = point
                run.append(f"{x(i):.1f},{y(value):.1f}")
                parts.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="3.5" fill="{colour}">'
                    f"<title>{escape(f'{labels[i]} {name}: {shown(value)}')}</title></circle>"
                )
            elif run:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="2"/>'
                )
                run = []
    items = [(name, colour, False) for name, colour, _ in series]
    items += [(name, colour, True) for name, _, colour in thresholds]
    legend, legend_h = _legend(left, upper + plot_h + 32, items, width=plot_w)
    parts.append(legend)
    return _svg(title, upper + plot_h + 32 + legend_h + 4, "".join(parts))


def histogram(
    title: str, buckets: Sequence[tuple[str, int]], *, alarm_from: int | None = None
) -> str:
    """Vertical bars per bucket (label, count); buckets from index `alarm_from` in orange."""
    if not any(n for _, n in buckets):
        return _empty(title)
    left, plot_h, upper = 20, 200, 24
    slot = (WIDTH - 2 * left) / len(buckets)
    top = max(n for _, n in buckets)
    parts = []
    for index, (label, n) in enumerate(buckets):
        height = plot_h * n / top
        bx = left + index * slot + 6
        colour = "#e67e22" if alarm_from is not None and index >= alarm_from else PALETTE[0]
        parts.append(
            f'<rect x="{bx:.1f}" y="{upper + plot_h - height:.1f}" width="{slot - 12:.1f}" '
            f'height="{height:.1f}" rx="2" fill="{colour}"><title>{escape(f"{label}: {n:,}")}</title></rect>'
        )
        parts.append(
            _text(
                bx + (slot - 12) / 2,
                upper + plot_h - height - 5,
                f"{n:,}",
                anchor="middle",
                size=11,
            )
        )
        parts.append(
            _text(bx + (slot - 12) / 2, upper + plot_h + 17, label, anchor="middle", size=11)
        )
    return _svg(title, upper + plot_h + 28, "".join(parts))
