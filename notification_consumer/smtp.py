"""The SMTP adapter: a session (one connection, opened on first use) and a verdict per message.

A message's outcome is one of three, and the batch handler acts on each differently:

* accepted (`None`): the server took responsibility for it;
* `Refused`: a 5xx reply for this recipient or this message (unknown mailbox, content
  rejected). Sending it again would get the same answer, so it is recorded as failed;
* `Deferred`: a 4xx reply for this recipient at RCPT (over quota, greylisting). It is this
  message's for now: the handler returns its record as `RetryLater`, and the run loop
  retries it a bounded number of times, then gives up on it;
* `SmtpUnavailable` (raised, a `TransientError`): the server cannot take mail *now*:
  connection refused or dropped, timeout, any other 4xx, authentication or TLS trouble, and a
  5xx for our own sender (MAIL FROM), which would refuse every message alike. The run loop
  pauses, backs off and retries the batch; nothing is dead-lettered, nothing marked failed.

SMTP replies often quote the recipient's address, so reply text is scrubbed of email
addresses before it leaves this module.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from common.errors import TransientError
from common.logs import scrub
from common.tracing import child_span
from notification_consumer.settings import NotificationSettings


class SmtpUnavailable(TransientError):  # noqa: N818 - a state, like ConnectionError
    """The SMTP server cannot take mail now; the same message will go through later."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A permanent (5xx) refusal of one message."""

    code: int
    reply: str


@dataclass(frozen=True, slots=True)
class Deferred:
    """A temporary (4xx) refusal of one recipient (over quota, greylisted): that message's.

    Other recipients may be accepted meanwhile, so it does not stop the batch: the run loop
    retries its record a few times, then gives up on it for now (`smtp_deferred`, replayable).
    """

    code: int
    reply: str


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False
    timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: NotificationSettings) -> SmtpConfig:
        password = settings.smtp_password
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password.get_secret_value() if password is not None else None,
            starttls=settings.smtp_starttls,
            ssl=settings.smtp_ssl,
            timeout_s=settings.smtp_timeout_seconds,
        )


def _reply(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return scrub(text)


CHECK_AFTER_S: Final = 1.0
"""A connection idle this long is checked (NOOP) before its next message: the server may
have closed it meanwhile, and a message must never be started on a dead connection."""
REOPEN_AFTER_S: Final = 30.0
"""A connection idle this long is closed (QUIT) and a new one opened: servers close idle
sessions after a while (RFC 5321 allows 5 minutes, some relays wait less)."""


class MailSession:
    """Sends messages over one connection, opened on the first send and kept between sends.

    The owner (`mailer.Mailer`) keeps it across handler calls and closes it at shutdown;
    an idle connection is checked, or replaced, before it carries a message again.
    """

    def __init__(self, config: SmtpConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._smtp: smtplib.SMTP | None = None
        self._clock = clock
        self._used = 0.0

    def send(self, message: bytes, *, sender: str, recipient: str) -> Refused | Deferred | None:
        """Hand `message` (its wire bytes) to the server from `sender` for `recipient`.

        Both are bare addresses (the envelope); None once the server accepted the message.
        """
        with child_span("smtp send"):  # a no-op unless tracing is on
            return self._send(message, sender=sender, recipient=recipient)

    def _send(self, message: bytes, *, sender: str, recipient: str) -> Refused | Deferred | None:
        try:
            smtp = self._connection()
            transaction(smtp, message, sender=sender, recipient=recipient)
        except smtplib.SMTPRecipientsRefused as exc:
            code, raw = next(iter(exc.recipients.values()))
            if 500 <= code < 600:
                return Refused(code, _reply(raw))
            return Deferred(code, _reply(raw))  # smtplib sent RSET: the session goes on
        except smtplib.SMTPDataError as exc:
            if 500 <= exc.smtp_code < 600:
                return Refused(exc.smtp_code, _reply(exc.smtp_error))
            self.close()
            raise SmtpUnavailable(
                f"message deferred: {exc.smtp_code} {_reply(exc.smtp_error)}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise SmtpUnavailable(
                f"{type(exc).__name__}: {exc.smtp_code} {_reply(exc.smtp_error)}"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise SmtpUnavailable(f"{type(exc).__name__}: {scrub(str(exc))}") from None
        finally:
            self._used = self._clock()
        return None

    def _connection(self) -> smtplib.SMTP:
        """The open connection if it is fresh or answers a NOOP, else a new one."""
        idle = self._clock() - self._used
        if self._smtp is not None and idle > REOPEN_AFTER_S:
            self.close()
        elif self._smtp is not None and idle > CHECK_AFTER_S and not _alive(self._smtp):
            self.drop()  # no QUIT: it did not answer
        if self._smtp is None:
            self._smtp = connect(self._config)
        return self._smtp

    def drop(self) -> None:
        """Close the connection without QUIT: after a failure, when the peer may not answer
        (a QUIT to a cut connection would wait out the timeout)."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def close(self) -> None:
        """QUIT if connected; a connection that already broke is simply dropped."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def transaction(smtp: smtplib.SMTP, message: bytes, *, sender: str, recipient: str) -> None:
    """MAIL, RCPT, DATA for one recipient: `smtplib.SMTP.sendmail`, minus its address parsing.

    sendmail re-parses both addresses with the email package on every message (a tenth of
    the service's CPU); these are bare addresses already, checked once (the sender in the
    settings, the recipient by `domain.valid_address`). The replies and exceptions are
    sendmail's: `SMTPSenderRefused`, `SMTPRecipientsRefused`, `SMTPDataError`, with RSET
    after a refusal (the session goes on) and the connection closed after a 421.
    """
    smtp.ehlo_or_helo_if_needed()
    size = f" SIZE={len(message)}" if smtp.does_esmtp and smtp.has_extn("size") else ""
    code, reply = smtp.docmd("mail", f"FROM:<{sender}>{size}")
    if code != 250:
        _abandon(smtp, code)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    code, reply = smtp.docmd("rcpt", f"TO:<{recipient}>")
    if code not in (250, 251):
        _abandon(smtp, code)
        raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
    code, reply = smtp.data(message)
    if code != 250:
        _abandon(smtp, code)
        raise smtplib.SMTPDataError(code, reply)


def _abandon(smtp: smtplib.SMTP, code: int) -> None:
    """After a refusal: close on 421 (the server is going away), else RSET, as sendmail does."""
    if code == 421:
        smtp.close()
        return
    with contextlib.suppress(smtplib.SMTPServerDisconnected):  # sendmail's `_rset`
        smtp.rset()


def _alive(smtp: smtplib.SMTP) -> bool:
    """Whether the server still answers on `smtp` (NOOP, one round trip)."""
    try:
        return smtp.noop()[0] == 250
    except (smtplib.SMTPException, OSError):
        return False


def connect(config: SmtpConfig) -> smtplib.SMTP:
    """An authenticated connection, over implicit TLS or upgraded with STARTTLS if asked."""
    smtp: smtplib.SMTP
    if config.ssl:
        context = ssl.create_default_context()
        smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout_s, context=context)
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)
    try:
        if config.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if config.username is not None:
            smtp.login(config.username, config.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp
