"""`index.html`: one page to start from after a run, linking everything the demo produced.

Plain HTML with inline CSS, no script and nothing fetched, so it opens from disk in any
browser. Every value shown comes from the summary or the mailbox and is escaped: subjects
carry text from events.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from dreamscape_dev.demo.mailbox import SavedMail
from dreamscape_dev.demo.summary import Summary, analytics_lines

_CSS = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;padding:0 1rem;max-width:60rem;color:#1d2330}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem}"
    "th,td{padding:.2rem .7rem;border-bottom:1px solid #e3e6ec;text-align:left}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".ok{color:#1b7f3b;font-weight:600}.fail{color:#b42318;font-weight:600}"
    "pre{background:#f5f6f8;padding:.8rem;overflow-x:auto}"
)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{cell}</td>" if i == 0 else f'<td class="n">{cell}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def _checks(summary: Summary) -> str:
    rows = [
        (
            f'<span class="{"ok" if c.ok else "fail"}">{"ok" if c.ok else "FAIL"}</span>',
            escape(c.name),
            escape(c.detail),
        )
        for c in summary.checks
    ]
    th = "<tr><th>verdict</th><th>check</th><th>detail</th></tr>"
    body = "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    return f"<table>{th}{body}</table>"


def _figures(summary: Summary) -> str:
    data = summary.as_json()
    expected = data["expected"]
    bookings = [
        (escape(s), f"{n:,}", f"{expected['bookings_by_status'].get(s, 0):,}")
        for s, n in data["bookings_by_status"].items()
    ]
    emails = [
        (escape(k), f"{n:,}", f"{expected['emails_by_kind'].get(k, 0):,}")
        for k, n in data["emails_by_kind"].items()
    ]
    dlq = [
        (escape(group), escape(", ".join(f"{r} {n}" for r, n in reasons.items()) or "none"))
        for group, reasons in data["dlq_by_reason"].items()
    ]
    return (
        "<h2>Bookings by status</h2>"
        + _table(("status", "voyage", "expected"), bookings)
        + "<h2>Emails by kind</h2>"
        + _table(("kind", "received", "expected"), emails)
        + "<h2>Dead-letter topics</h2>"
        + _table(("group", "records by reason"), dlq)
        + "<h2>Analytics</h2><pre>"
        + escape("\n".join(analytics_lines(summary.analytics)[1:]))
        + '</pre><p><a href="dashboard.html">The analytics dashboard</a></p>'
    )


def _mail(mail: Sequence[SavedMail], root: Path) -> str:
    rows = []
    for m in mail:
        eml = escape(m.eml.relative_to(root).as_posix())
        html = escape(m.html.relative_to(root).as_posix()) if m.html else ""
        subject = f'<a href="{html}">{escape(m.subject)}</a>' if html else escape(m.subject)
        rows.append(
            f'<tr><td class="n">{m.number}</td><td>{escape(m.kind)}</td>'
            f'<td>{subject}</td><td><a href="{eml}">.eml</a></td></tr>'
        )
    head = "<tr><th>#</th><th>kind</th><th>subject (the rendered HTML)</th><th>source</th></tr>"
    return f"<h2>Emails sent ({len(mail):,})</h2><table>{head}{''.join(rows)}</table>"


def index_page(summary: Summary, mail: Sequence[SavedMail], root: Path) -> str:
    """The whole page."""
    verdict = (
        '<span class="ok">every check passed</span>'
        if summary.ok
        else '<span class="fail">some checks failed</span>'
    )
    exp = summary.expected
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>DreamScape demo</title><style>{_CSS}</style></head><body>"
        "<h1>DreamScape payment consumers: demo run</h1>"
        f"<p>{summary.flows:,} payment flows (seed {summary.seed}), {exp.total_records:,} records "
        f"published ({exp.duplicates:,} duplicates, {exp.total_records - exp.valid_records} "
        f"poison); {verdict}.</p>"
        '<p><a href="dashboard.html">Analytics dashboard</a> · '
        '<a href="summary.json">summary.json</a> · logs: '
        + " · ".join(f'<a href="logs/{n}.log">{n}</a>' for n in summary.exit_codes)
        + "</p><h2>Checks against the simulator's expectations</h2>"
        + _checks(summary)
        + _figures(summary)
        + _mail(mail, root)
        + "</body></html>\n"
    )
