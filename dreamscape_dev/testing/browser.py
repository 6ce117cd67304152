"""Rendering pages in a real headless Chromium, for tests of what a person sees.

Uses Playwright's Python driver with the system's Chromium (Debian's package; no browser
download): a test opens a file, collects console messages and page errors, checks that text
is visible, and saves a screenshot.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Flags for a closed network: without them Chromium keeps dialling Google's hosts."""


def chromium_path() -> str | None:
    """The Chromium executable: `CHROMIUM_PATH`, else `chromium` on PATH."""
    return (
        os.environ.get("CHROMIUM_PATH")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


@dataclass
class Rendered:
    """A page opened in the browser, and what it said on the console."""

    page: Page
    console: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        """Console errors and uncaught exceptions."""
        return [text for kind, text in self.console if kind == "error"] + self.page_errors

    def visible(self, text: str) -> bool:
        return self.page.get_by_text(text, exact=False).first.is_visible()


class HeadlessChromium:
    """One browser for a test session; `open()` gives a fresh page per file."""

    def __init__(self, browser: Browser) -> None:
        self._browser = browser

    @contextmanager
    def open(self, path: Path, *, width: int = 900, height: int = 1200) -> Iterator[Rendered]:
        page = self._browser.new_page(viewport={"width": width, "height": height})
        rendered = Rendered(page)
        page.on("console", lambda m: rendered.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: rendered.page_errors.append(str(e)))
        try:
            page.goto(path.resolve().as_uri(), wait_until="load")
            yield rendered
        finally:
            page.close()


@contextmanager
def headless_chromium(executable: str) -> Iterator[HeadlessChromium]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            yield HeadlessChromium(browser)
        finally:
            browser.close()
