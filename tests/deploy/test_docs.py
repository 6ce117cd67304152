"""The operator and developer docs agree with the code, so they cannot drift unnoticed.

docs/operations.md must list every runtime metric; commands shown in the docs must parse;
quoted files must be quoted as they are now; relative links must lead somewhere. (The
settings reference, docs/settings.md, is generated: tests/unit/test_settings_doc.py.)
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Final

import pytest
from prometheus_client import CollectorRegistry

from common.cli import _parser as dreamscape_parser
from common.metrics import RuntimeMetrics

ROOT: Final = Path(__file__).resolve().parents[2]
DOCS: Final = ROOT / "docs"
OPERATIONS: Final = DOCS / "operations.md"
CHECKED_DOCS: Final = (
    "operations.md",
    "architecture.md",
    "writing-a-consumer.md",
    "settings.md",
    "testing.md",
    "kubernetes.md",
)


# -- reading markdown ---------------------------------------------------------------------


def section(text: str, heading_contains: str) -> str:
    """The section whose heading contains `heading_contains`, up to the next heading as high."""
    lines = text.splitlines()
    for start, line in enumerate(lines):
        match = re.match(r"(#+)\s", line)
        if match and heading_contains in line:
            level = len(match[1])
            end = next(
                (
                    i
                    for i in range(start + 1, len(lines))
                    if (m := re.match(r"(#+)\s", lines[i])) and len(m[1]) <= level
                ),
                len(lines),
            )
            return "\n".join(lines[start:end])
    pytest.fail(f"no heading containing {heading_contains!r}")


def table_rows(text: str) -> list[list[str]]:
    """The cells of every markdown table row in `text` (separator rows left out)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def code_lines(text: str) -> list[str]:
    """Lines of fenced and indented code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced or line.startswith("    "):
            lines.append(line)
    return lines


def quoted_blocks(text: str) -> list[tuple[str, str, str]]:
    """(`file` or `excerpt`, path, block text) for each code block marked as a quote."""
    pattern = re.compile(r"<!-- (file|excerpt): (\S+) -->\n```\w*\n(.*?)```", re.S)
    return [(m[1], m[2], m[3]) for m in pattern.finditer(text)]


def anchors(text: str) -> set[str]:
    """GitHub's anchors of the headings in `text`."""
    headings = (line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#"))
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def runtime_metric_names() -> set[str]:
    """Names the runtime's metrics are scraped by (counters with their `_total`)."""
    registry = CollectorRegistry()
    RuntimeMetrics(registry, "docs")
    return {
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in registry.collect()
    }


# -- tests --------------------------------------------------------------------------------


class TestOperationsPage:
    """Metrics and commands shown in the docs are the real ones."""

    def test_every_runtime_metric_is_documented(self) -> None:
        """Each metric of common/metrics.py is named in docs/operations.md."""
        text = OPERATIONS.read_text()
        missing = {name for name in runtime_metric_names() if f"`{name}`" not in text}
        assert not missing

    def test_every_documented_runtime_metric_exists(self) -> None:
        """Each `dreamscape_consumer_*` name in docs/operations.md (a histogram's `_bucket` series too) is scraped from the runtime."""
        found = re.findall(r"\bdreamscape_consumer_\w+", OPERATIONS.read_text())
        named = {re.sub(r"(_seconds)_bucket$", r"\1", name) for name in found}
        assert named <= runtime_metric_names(), sorted(named - runtime_metric_names())

    def test_documented_dreamscape_commands_parse(self) -> None:
        """Every `dreamscape dlq|simulate ...` line in the docs' code is accepted by the CLI's parser."""
        commands = [
            match[1]
            for name in CHECKED_DOCS
            for line in code_lines((DOCS / name).read_text())
            if (match := re.search(r"(?:^|\s)(dreamscape\s+(?:dlq|simulate)\b.*)", line))
        ]
        assert len(commands) >= 5
        parser = dreamscape_parser()
        for command in commands:
            argv = shlex.split(command, comments=True)[1:]
            try:
                parser.parse_args(argv)
            except SystemExit:
                pytest.fail(f"the dreamscape CLI rejects: {command}")


class TestDocsStayTrue:
    """Quotes, links and anchors in the docs lead to what exists now."""

    @pytest.mark.parametrize("name", CHECKED_DOCS)
    def test_quoted_code_is_the_current_file(self, name: str) -> None:
        """A block marked `file:` is the whole file as it is; one marked `excerpt:` is part of it."""
        for kind, path, block in quoted_blocks((DOCS / name).read_text()):
            current = (ROOT / path).read_text()
            if kind == "file":
                assert block == current, f"{name} quotes an old {path}"
            else:
                assert block in current, f"{name} quotes text no longer in {path}:\n{block[:200]}"

    def test_the_guide_quotes_the_whole_example(self) -> None:
        """docs/writing-a-consumer.md quotes every module of the example consumer whole."""
        quotes = quoted_blocks((DOCS / "writing-a-consumer.md").read_text())
        modules = {
            f"examples/refund_tracker/{path.name}"
            for path in (ROOT / "examples/refund_tracker").glob("*.py")
            if path.name != "__init__.py"
        }
        assert modules <= {p for k, p, _ in quotes if k == "file"}

    @pytest.mark.parametrize("name", CHECKED_DOCS)
    def test_relative_links_resolve(self, name: str) -> None:
        """Relative links point at files that exist, and anchors at headings that exist."""
        text = (DOCS / name).read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (DOCS / path) if path else DOCS / name
            assert file.exists(), f"{name} links to missing {target}"
            if anchor:
                assert anchor in anchors(file.read_text()), f"{name}: no heading for #{anchor}"
