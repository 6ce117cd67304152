"""A real SMTP server for tests, collecting what it receives.

Notification tests must prove that an email really crossed SMTP, and that transient (4xx)
and permanent (5xx) refusals are handled. aiosmtpd runs a genuine SMTP server in a
thread; this wraps it with a thread-safe inbox, a condition to wait on, scripted
refusals and a stop/start on the same port for outage tests.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller

from dreamscape_dev.testing.proxy import free_port

Stage = Literal["RCPT", "DATA"]


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message as the server accepted it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage


class _Handler:
    """aiosmtpd handler: accepts or refuses per the sink's current script."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self._sink.refusal_at("RCPT") or self._sink.reply_for(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        refusal = self._sink.refusal_at("DATA")
        if refusal:
            return refusal
        if self._sink.delay_s:  # a slow relay: answers each message after a while
            await asyncio.sleep(self._sink.delay_s)
        self._sink.deliver(envelope.mail_from, envelope.rcpt_tos, envelope.content)
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps every accepted message in `messages`."""

    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._messages: list[ReceivedMessage] = []
        self._changed = threading.Condition()
        self._refusal: tuple[str, Stage] | None = None
        self._per_recipient: dict[str, str] = {}
        #: Seconds the server takes to accept each message (0: at once), to play a slow relay.
        self.delay_s = 0.0
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A snapshot of the messages received so far, oldest first."""
        with self._changed:
            return list(self._messages)

    def start(self) -> SmtpSink:
        """Start (or restart, on the same port) serving; returns once the server answers."""
        if self._controller is None:
            controller = Controller(_Handler(self), hostname=self.host, port=self.port)
            controller.start()
            self._controller = controller
        return self

    def stop(self) -> None:
        """Stop serving; connections are refused until `start()`. Messages are kept."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def reject_with(self, reply: str | None, at: Stage = "RCPT") -> None:
        """Answer `reply` (e.g. "451 try later") at `at` from now on; None accepts again."""
        with self._changed:
            self._refusal = None if reply is None else (reply, at)

    def reply_to_recipient(self, address: str, reply: str | None) -> None:
        """Answer `reply` (e.g. "452 4.2.2 over quota") at RCPT for `address` only; None clears."""
        with self._changed:
            if reply is None:
                self._per_recipient.pop(address.lower(), None)
            else:
                self._per_recipient[address.lower()] = reply

    def reply_for(self, address: str) -> str | None:
        """The scripted RCPT reply for `address`, if any."""
        with self._changed:
            return self._per_recipient.get(address.lower())

    def refusal_at(self, stage: Stage) -> str | None:
        """The scripted reply for `stage`, if the sink is currently refusing there."""
        with self._changed:
            if self._refusal is not None and self._refusal[1] == stage:
                return self._refusal[0]
            return None

    def deliver(self, mail_from: str, rcpt_tos: list[str], raw: bytes) -> None:
        """Record an accepted message and wake waiters."""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        received = ReceivedMessage(mail_from, tuple(rcpt_tos), raw, parsed)
        with self._changed:
            self._messages.append(received)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least `count` messages arrived; raise TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"{len(self._messages)} of {count} messages within {timeout}s")
            return list(self._messages)

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._changed:
            self._messages.clear()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
