"""Event + context → `Email` (subject, HTML, text, headers). Pure: no SMTP, no database.

Templates are Jinja2, looked up per language, first match wins:

    NOTIFICATION_TEMPLATE_DIR/<lang>/NAME   a team's translation override
    NOTIFICATION_TEMPLATE_DIR/NAME          a team's override (all languages)
    package templates/<lang>/NAME           shipped translation (fr)
    package templates/NAME                  shipped default (English)

Each email is `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html`, the bodies extending
`base.txt` / `base.html`. HTML is autoescaped (the gateway's `errorMessage` and the refund
`reason` are untrusted text); text bodies are not. Undefined variables are errors, so a
broken override fails the start-up check rather than sending half an email. One Jinja
environment per language keeps `extends`/`import` inside that language's lookup order.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)

from common.confirmation import confirmation_number
from common.events import PaymentEvent
from notification_consumer.domain import Kind, PaymentSummary, Recipient
from notification_consumer.formatting import FILTERS, resolve_locale

PACKAGE: Final = "notification_consumer"
TEMPLATES: Final = Path(__file__).parent / "templates"
"""The shipped templates (package data), listed from the file system: `importlib.resources`
cannot list a package that an editable install exposes as a namespace package."""
MAX_SUBJECT_LENGTH: Final = 200
_LINE_BREAKS: Final = re.compile(r"[ \t]*[\r\n\v\f\x85\u2028\u2029]+[ \t]*")
"""Line breaks (with the blanks around them); no-break spaces from Babel are kept."""


@dataclass(frozen=True, slots=True)
class Email:
    """A rendered email, before it is addressed: what the templates produced."""

    subject: str
    html: str
    text: str
    headers: Mapping[str, str]
    language: str

    @property
    def boundary(self) -> str:
        """A MIME boundary unique to this email: its Message-ID's local part."""
        return self.headers["Message-ID"].strip("<>").split("@")[0]


@dataclass(frozen=True, slots=True)
class EmailContext:
    """Everything besides the event that an email depends on."""

    kind: Kind
    recipient: Recipient
    payment: PaymentSummary | None = None


def message_id(event_id: str, kind: Kind, domain: str) -> str:
    """The Message-ID of an event's email: the same on every attempt, so duplicates collapse."""
    return f"<{event_id}.{kind}@{domain}>"


def one_line(subject: str) -> str:
    """A subject on one line: every line break (CR, LF, Unicode separators) becomes a space."""
    return _LINE_BREAKS.sub(" ", subject).strip()[:MAX_SUBJECT_LENGTH]


class Renderer:
    """Renders emails; builds its template environments once, at start-up."""

    def __init__(
        self,
        *,
        retry_url: str,
        default_locale: str = "en",
        timezone: str = "UTC",
        template_dir: Path | None = None,
        message_id_domain: str = "notifications.dreamscape",
    ) -> None:
        self._retry_url = retry_url
        self._default_locale = default_locale
        self._timezone = timezone
        self._template_dir = template_dir
        self._domain = message_id_domain
        self._environments: dict[str, Environment] = {}

    def render(self, event: PaymentEvent, context: EmailContext) -> Email:
        locale = resolve_locale(context.recipient.locale, self._default_locale)
        env = self.environment(locale.language)
        values = self._values(event, context)
        values["locale"] = locale
        kind = context.kind
        return Email(
            subject=one_line(env.get_template(f"{kind}.subject.txt").render(values)),
            html=env.get_template(f"{kind}.html").render(values),
            text=env.get_template(f"{kind}.txt").render(values),
            headers={
                "Message-ID": message_id(event.event_id, kind, self._domain),
                "Auto-Submitted": "auto-generated",
                "Content-Language": str(locale).replace("_", "-"),
                "X-DreamScape-Notification": kind,
            },
            language=locale.language,
        )

    def _values(self, event: PaymentEvent, context: EmailContext) -> dict[str, Any]:
        payload = event.payload
        retry_url = None
        if context.kind == "payment_failed":
            retry_url = self._retry_url.format(
                booking_id=quote(payload.booking_id, safe=""),
                payment_id=quote(payload.payment_id, safe=""),
            )
        return {
            "kind": context.kind,
            "event": event,
            "payload": payload,
            "confirmation_number": (
                confirmation_number(payload.booking_id, payload.payment_id)
                if context.kind == "receipt"
                else None
            ),
            "payment": context.payment,
            "recipient_name": context.recipient.display_name,
            "retry_url": retry_url,
            "timezone": self._timezone,
        }

    def environment(self, language: str) -> Environment:
        """The template environment of `language` (built on first use, then reused)."""
        env = self._environments.get(language)
        if env is None:
            env = Environment(
                loader=ChoiceLoader(self._loaders(language)),
                autoescape=select_autoescape(enabled_extensions=("html",), default=False),
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=True,
                auto_reload=False,  # templates are read once; no stat() per email
            )
            env.filters.update(FILTERS)
            self._environments[language] = env
        return env

    def _loaders(self, language: str) -> list[BaseLoader]:
        loaders: list[BaseLoader] = []
        if self._template_dir is not None:
            loaders.append(FileSystemLoader(self._template_dir / language))
            loaders.append(FileSystemLoader(self._template_dir))
        if language in shipped_languages():
            loaders.append(PackageLoader(PACKAGE, f"templates/{language}"))
        loaders.append(PackageLoader(PACKAGE, "templates"))
        return loaders


@functools.cache
def shipped_languages() -> frozenset[str]:
    """Languages with translations in the package (the root templates are English)."""
    return frozenset(entry.name for entry in TEMPLATES.iterdir() if entry.is_dir())
