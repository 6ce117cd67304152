"""The demo's output directory: its layout, and a fresh start on every run.

Every run starts from an empty directory, so two runs in a row never mix databases, mail or
logs. Deleting a directory the user named is dangerous, so only one that is empty or that a
previous demo run marked as its own is wiped; anything else stops the demo before it starts.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

MARKER: Final = ".dreamscape-demo"
"""Written into every output directory the demo creates: what allows wiping it next time."""

_OLD_DEMO_LEFTOVERS: Final = frozenset({"event-log.jsonl"})
"""What the previous, single-consumer demo left in demo-output/."""


class OutputDirError(Exception):
    """The output directory holds files the demo did not write: it will not delete them."""


@dataclass(frozen=True, slots=True)
class OutputDir:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def mail(self) -> Path:
        return self.root / "mail"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def dashboard(self) -> Path:
        return self.root / "dashboard.html"

    @property
    def index(self) -> Path:
        return self.root / "index.html"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    def database_url(self, service: str) -> str:
        """An SQLite URL (absolute path) for `service`'s database under data/."""
        return f"sqlite:///{(self.data / f'{service}.db').resolve()}"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def fresh(self) -> OutputDir:
        """Empty the directory (if it is ours to empty), create the layout, mark it ours."""
        if self.root.exists():
            names = {p.name for p in self.root.iterdir()}
            if names and MARKER not in names and not names <= _OLD_DEMO_LEFTOVERS:
                raise OutputDirError(
                    f"{self.root} holds files the demo did not write; choose another --output"
                )
            shutil.rmtree(self.root)
        for directory in (self.data, self.mail, self.logs):
            directory.mkdir(parents=True)
        (self.root / MARKER).write_text(
            "written by `python -m dreamscape_dev.demo`; wiped on each run\n"
        )
        return self
