"""The README is the front door: its documentation index names every page of docs/, and its links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
README: Final = ROOT / "README.md"


def section(text: str, heading: str) -> str:
    """The `## heading` section of `text`, up to the next `## `."""
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def anchors(text: str) -> set[str]:
    """GitHub's anchors of the headings in `text`."""
    headings = (line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#"))
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_the_index_names_every_page_of_docs() -> None:
    """Each docs/*.md has its line in the README's Documentation section."""
    index = section(README.read_text(encoding="utf-8"), "Documentation")
    pages = sorted(path.name for path in (ROOT / "docs").glob("*.md"))
    missing = [page for page in pages if f"](docs/{page})" not in index]
    assert not missing, f"add a line to the README's Documentation section for {missing}"


def test_relative_links_resolve() -> None:
    """Relative links point at files that exist, and anchors at headings that exist."""
    for target in re.findall(r"\]\(([^)\s]+)\)", README.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path if path else README
        assert file.exists(), f"the README links to missing {target}"
        if anchor:
            assert anchor in anchors(file.read_text(encoding="utf-8")), f"no heading for {target}"


def test_no_figure_is_pinned_to_a_commit() -> None:
    """Measured figures live in docs/performance.md and docs/chaos.md, not in the README."""
    text = README.read_text(encoding="utf-8")
    assert "<!-- bench:begin -->" not in text
    assert not re.search(r"\b(commit|clone of) [0-9a-f]{7,40}\b", text)
