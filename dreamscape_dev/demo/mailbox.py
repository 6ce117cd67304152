"""An SMTP server inside the demo process that files every message it accepts.

The notification service must send real SMTP, and a person watching the demo wants to open
what it sent: each message is saved as `NNNN-<kind>.eml` (the bytes as received) and its
HTML part as `NNNN-<kind>.html`, before the server answers 250. So once the notification group
has committed an offset, the emails for the records before it are on disk.
"""

from __future__ import annotations

import email
import email.policy
import threading
from collections import Counter
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

from dreamscape_dev.testing.proxy import free_port

KIND_HEADER = "X-DreamScape-Notification"
"""The header the notification service names the email's kind in."""


@dataclass(frozen=True, slots=True)
class SavedMail:
    """One accepted message and where it was filed."""

    number: int
    kind: str
    subject: str
    message_id: str
    eml: Path
    html: Path | None


class Mailbox:
    """aiosmtpd on 127.0.0.1 (a free port), filing messages under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.host = "127.0.0.1"
        self.port = free_port()
        self._lock = threading.Lock()
        self._saved: list[SavedMail] = []
        self._controller: Controller | None = None

    def start(self) -> Mailbox:
        self.directory.mkdir(parents=True, exist_ok=True)
        controller = Controller(_Handler(self), hostname=self.host, port=self.port)
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def saved(self) -> list[SavedMail]:
        """Every message filed so far, in arrival order."""
        with self._lock:
            return list(self._saved)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._saved)

    def by_kind(self) -> dict[str, int]:
        """Distinct messages (by Message-ID) per kind: a resent copy counts once."""
        distinct = {(m.kind, m.message_id) for m in self.saved}
        return dict(sorted(Counter(kind for kind, _ in distinct).items()))

    def file(self, raw: bytes) -> None:
        """Save one message and its HTML part under the next number.

        Parsed with the `compat32` policy, which leaves headers as text: six times cheaper
        than the modern policy, and this runs once per email while the demo is timed.
        """
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        kind = _safe_name(_header(message, KIND_HEADER) or "unknown")
        with self._lock:
            number = len(self._saved) + 1
            stem = self.directory / f"{number:04d}-{kind}"
            eml = stem.with_suffix(".eml")
            eml.write_bytes(raw)
            html = _save_html(message, stem.with_suffix(".html"))
            subject = _header(message, "Subject")
            message_id = _header(message, "Message-ID") or eml.name
            self._saved.append(SavedMail(number, kind, subject, message_id, eml, html))

    def __enter__(self) -> Mailbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Handler:
    """aiosmtpd's hook: file the message, then accept it."""

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        self._mailbox.file(envelope.content)
        return "250 Message accepted for delivery"


def _header(message: Message, name: str) -> str:
    """A header's text, RFC 2047 words decoded and folding undone ("" when absent)."""
    value = message.get(name)
    return "" if value is None else " ".join(str(make_header(decode_header(value))).split())


def _save_html(message: Message, path: Path) -> Path | None:
    """Write the first text/html part, decoded, to `path`; None if there is none."""
    for part in message.walk():
        if part.get_content_type() == "text/html":
            body = part.get_payload(decode=True)
            if isinstance(body, bytes):
                text = body.decode(part.get_content_charset() or "utf-8", "replace")
                path.write_text(text, encoding="utf-8")
                return path
    return None


def _safe_name(kind: str) -> str:
    """The kind as a file-name part: letters, digits, `_` and `-` only."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in kind)[:40] or "unknown"
