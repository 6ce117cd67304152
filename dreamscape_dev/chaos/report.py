"""The chaos report: `report.json`, `index.html` (lag over time, faults marked), a table.

The page draws, per scenario, one line per consumer group (lag against seconds into the
stream) and shades each fault's span on the same axis, so the effect of a fault and the
recovery after it read at a glance. It is one self-contained file: no scripts, no fonts.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dreamscape_dev.chaos.harness import ScenarioResult

COLOURS = {"voyage": "#1f77b4", "notification": "#d62728", "analytics": "#2ca02c"}


def as_json(results: Sequence[ScenarioResult], environment: str) -> dict[str, Any]:
    return {
        "environment": environment,
        "ok": all(r.ok for r in results),
        "scenarios": [_scenario(r) for r in results],
    }


def _scenario(result: ScenarioResult) -> dict[str, Any]:
    s = result.scenario
    return {
        "name": s.name,
        "ok": result.ok,
        "rate_per_s": s.rate,
        "stream_seconds": s.seconds,
        "instances": s.instances,
        "group_protocol": s.group_protocol,
        "events_published": result.published,
        "poison_published": result.poison,
        "expected_effects": result.verdict.expected_effects,
        "lost_effects": result.verdict.lost,
        "doubled_effects": result.verdict.doubled,
        "resent_email_copies": result.verdict.resent_copies,
        "dlq_expected": result.verdict.dlq_expected,
        "dlq_found": result.verdict.dlq_found,
        "max_lag": result.max_lag,
        "caught_up_after_stream_s": result.caught_up_s,
        "faults": [
            {
                "fault": f.label,
                "start_s": f.started_s,
                "end_s": f.ended_s,
                "recovered_s": f.recovered_s,
            }
            for f in result.faults
        ],
        "kills": result.kills,
        "exit_codes": result.exit_codes,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.verdict.checks],
        "lag_samples": [[x.seconds, x.group, x.lag] for x in result.samples],
        "run_seconds": result.seconds,
        "notes": result.notes,
    }


def table(results: Sequence[ScenarioResult]) -> str:
    header = (
        f"{'scenario':<19}{'events':>8}{'effects':>9}{'lost':>6}{'doubled':>8}{'resent':>7}"
        f"{'DLQ exp/found':>16}{'max lag':>9}{'recovery s':>12}{'lag 0 s':>9}{'exits':>8}  verdict"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        v = r.verdict
        dlq = f"{sum(v.dlq_expected.values())}/{sum(v.dlq_found.values())}"
        # After the last fault: earlier ones' recoveries overlap the faults that follow them.
        last = max(r.faults, key=lambda f: f.ended_s, default=None)
        recovery = "-" if last is None or last.recovered_s is None else f"{last.recovered_s:.1f}"
        exits = "all 0" if all(c == 0 for c in r.exit_codes.values()) else "FAIL"
        lines.append(
            f"{r.scenario.name:<19}{r.published:>8,}{v.expected_effects:>9,}"
            f"{sum(v.lost.values()):>6}{sum(v.doubled.values()):>8}{v.resent_copies:>7}"
            f"{dlq:>16}{max(r.max_lag.values(), default=0):>9,}{recovery:>12}"
            f"{'-' if r.caught_up_s is None else f'{r.caught_up_s:.0f}':>9}{exits:>8}  "
            + ("ok" if r.ok else "FAIL")
        )
    return "\n".join(lines)


def write(results: Sequence[ScenarioResult], environment: str, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(
        json.dumps(as_json(results, environment), indent=2, default=str)
    )
    page = out / "index.html"
    page.write_text(_page(results, environment), encoding="utf-8")
    return page


def _page(results: Sequence[ScenarioResult], environment: str) -> str:
    sections = "\n".join(_section(r) for r in results)
    verdict = "every scenario passed" if all(r.ok for r in results) else "FAILED"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>DreamScape chaos report</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:70em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}
.ok{{color:#2a7}}.fail{{color:#c22;font-weight:bold}}pre{{background:#f6f6f6;padding:1em}}</style>
</head><body><h1>DreamScape chaos report: {verdict}</h1>
<p>{html.escape(environment)}</p>
<pre>{html.escape(table(results))}</pre>
{sections}
</body></html>
"""


def _section(result: ScenarioResult) -> str:
    rows = "".join(
        f"<tr><td class='{'ok' if c.ok else 'fail'}'>{'ok' if c.ok else 'FAIL'}</td>"
        f"<td>{html.escape(c.name)}</td><td>{html.escape(c.detail)}</td></tr>"
        for c in result.verdict.checks
    )
    faults = "".join(
        f"<li>{html.escape(f.label)}: {f.started_s:.1f} to {f.ended_s:.1f} s, back within 2 s of "
        f"the stream after {'—' if f.recovered_s is None else f'{f.recovered_s:.1f} s'}</li>"
        for f in result.faults
    )
    return (
        f"<h2 id='{result.scenario.name}'>{html.escape(result.scenario.name)}</h2>"
        f"{_chart(result)}<ul>{faults}</ul><table>{rows}</table>"
    )


def _chart(result: ScenarioResult, width: int = 900, height: int = 240) -> str:
    samples = result.samples
    end = max([s.seconds for s in samples] + [f.ended_s for f in result.faults] + [1.0])
    top = max([s.lag for s in samples] + [1])
    pad = 40

    def x(seconds: float) -> float:
        return pad + (width - 2 * pad) * seconds / end

    def y(lag: int) -> float:
        return height - pad - (height - 2 * pad) * lag / top

    shades = "".join(
        f"<rect x='{x(f.started_s):.1f}' y='{pad}' width='{max(2.0, x(f.ended_s) - x(f.started_s)):.1f}' "
        f"height='{height - 2 * pad}' fill='#fc6' opacity='0.35'><title>{html.escape(f.label)}</title></rect>"
        f"<text x='{x(f.started_s):.1f}' y='{pad - 4}' font-size='10'>{html.escape(f.label)}</text>"
        for f in result.faults
    )
    lines = ""
    for group, colour in COLOURS.items():
        points = " ".join(f"{x(s.seconds):.1f},{y(s.lag):.1f}" for s in samples if s.group == group)
        if points:
            lines += f"<polyline fill='none' stroke='{colour}' stroke-width='1.5' points='{points}'><title>{group}</title></polyline>"
    legend = "".join(
        f"<text x='{width - pad - 90}' y='{pad + 14 * (i + 1)}' fill='{c}' font-size='11'>{g}</text>"
        for i, (g, c) in enumerate(COLOURS.items())
    )
    axes = (
        f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' y2='{height - pad}' stroke='#333'/>"
        f"<line x1='{pad}' y1='{pad}' x2='{pad}' y2='{height - pad}' stroke='#333'/>"
        f"<text x='{pad}' y='{height - 10}' font-size='11'>0 s</text>"
        f"<text x='{width - pad - 30}' y='{height - 10}' font-size='11'>{end:.0f} s</text>"
        f"<text x='2' y='{pad + 4}' font-size='11'>{top:,}</text>"
    )
    return f"<svg width='{width}' height='{height}' role='img' aria-label='lag over time'>{shades}{axes}{lines}{legend}</svg>"
