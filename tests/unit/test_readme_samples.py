"""The code samples of the README and of the consumer guide are the real files, or at least compile.

A fenced block right after `<!-- file: PATH -->` must be the whole file as it is now; one
after `<!-- excerpt: PATH -->` must be whole, consecutive lines of it (the convention of
docs/, whose quotes tests/deploy/test_docs.py also checks). So a sample is updated with the
file it quotes, or this test fails. A Python block that quotes nothing must at least compile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
DOCUMENTS: Final = ("README.md", "docs/writing-a-consumer.md")
PYTHON: Final = frozenset({"python", "py", "python3"})

_MARKER: Final = re.compile(r"^<!-- (file|excerpt): (\S+) -->$", re.M)
_BLOCK: Final = re.compile(
    r"^(?:<!-- (?P<kind>file|excerpt): (?P<path>\S+) -->\n)?```(?P<language>\w*)\n(?P<text>.*?)^```$",
    re.M | re.S,
)


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block of a document, and the file it quotes, if it is marked."""

    where: str
    language: str
    text: str
    kind: str | None
    path: str | None


def blocks(document: str) -> list[Block]:
    text = (ROOT / document).read_text(encoding="utf-8")
    return [
        Block(
            f"{document}:{text.count(chr(10), 0, m.start()) + 1}",
            m["language"],
            m["text"],
            m["kind"],
            m["path"],
        )
        for m in _BLOCK.finditer(text)
    ]


def quoted(document: str, kind: str) -> list[Block]:
    return [b for b in blocks(document) if b.kind == kind]


def source(block: Block) -> str:
    assert block.path is not None
    path = ROOT / block.path
    assert path.is_file(), f"{block.where} quotes {block.path}, which does not exist"
    return path.read_text(encoding="utf-8")


def has_consecutive_lines(text: str, excerpt: str) -> bool:
    lines, wanted = text.splitlines(), excerpt.splitlines()
    return any(lines[i : i + len(wanted)] == wanted for i in range(len(lines) - len(wanted) + 1))


class TestQuotedFiles:
    @pytest.mark.parametrize("document", DOCUMENTS)
    def test_a_file_block_is_the_whole_file_as_it_is_now(self, document: str) -> None:
        """A block marked `file:` is byte for byte the file it names."""
        for block in quoted(document, "file"):
            assert block.text == source(block), f"{block.where} quotes an old {block.path}"

    @pytest.mark.parametrize("document", DOCUMENTS)
    def test_an_excerpt_block_is_whole_consecutive_lines_of_its_file(self, document: str) -> None:
        """A block marked `excerpt:` is a run of whole lines of the file it names, unchanged."""
        for block in quoted(document, "excerpt"):
            assert has_consecutive_lines(source(block), block.text), (
                f"{block.where} quotes lines no longer in {block.path}:\n{block.text[:300]}"
            )

    @pytest.mark.parametrize("document", DOCUMENTS)
    def test_every_marker_is_followed_by_a_code_block(self, document: str) -> None:
        """A `file:` or `excerpt:` marker right above something else checks nothing: it fails instead."""
        text = (ROOT / document).read_text(encoding="utf-8")
        markers = {(m[1], m[2]) for m in _MARKER.finditer(text)}
        marked = {(b.kind, b.path) for b in blocks(document) if b.kind}
        assert markers == marked, f"markers without a block right below: {markers - marked}"

    def test_the_readme_quotes_the_example_consumer(self) -> None:
        """The README's consumer sample is marked as a quote of examples/event_log.py."""
        paths = {b.path for b in blocks("README.md") if b.kind}
        assert "examples/event_log.py" in paths


class TestOtherSamples:
    @pytest.mark.parametrize("document", DOCUMENTS)
    def test_every_python_block_is_a_quote_or_compiles(self, document: str) -> None:
        """A Python block that quotes no file is at least valid Python."""
        for block in blocks(document):
            if block.language in PYTHON and block.kind is None:
                try:
                    compile(block.text, block.where, "exec")
                except SyntaxError as exc:
                    pytest.fail(f"{block.where}: the Python sample does not compile: {exc}")
