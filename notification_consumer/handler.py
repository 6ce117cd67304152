"""The batch handler: the glue between the database, the pure planning and rendering, and SMTP.

Per batch:

1. one transaction records the payment facts of every event and reads back what planning
   needs (already notified? booking paid? contact? earlier facts of the payment?);
2. `notifications.plan` decides, per notifying event, to send or why not;
3. emails are rendered and sent over `SMTP_CONNECTIONS` connections kept for the batch
   (`mailer`); every `record_every` outcomes, and at the end of the batch whatever
   happened (even when SMTP failed midway), the final outcomes go to `sent_notification`.

Exactly once in effect: a (eventId, kind) with a recorded outcome is never sent again, and
an outcome is recorded only after the server accepted (or refused) the message. Outcomes
the database would not take are kept in memory and recorded before the retry sends
anything. A process killed between "accepted" and "recorded" resends at most
`record_every` + `SMTP_CONNECTIONS` messages when the records are redelivered, each with
the Message-ID it had the first time (`<eventId.kind@domain>`), so receiving systems can
drop the copy (docs/notification.md, "Exactly once").

Nothing here is dead-lettered: SMTP and database outages raise transient errors (the run
loop pauses and retries the batch; what was already recorded is skipped), 5xx refusals and
missing addresses are recorded outcomes. Only a bug (say, a template error) fails a record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from common.db import create_schema, transaction
from common.errors import TransientError
from common.logs import record_context
from common.records import Inbound
from notification_consumer import repository
from notification_consumer.mailer import Mailer
from notification_consumer.message import compose
from notification_consumer.metrics import NotificationMetrics
from notification_consumer.models import MODELS
from notification_consumer.notifications import (
    Kind,
    Knowledge,
    Outcome,
    Send,
    Skip,
    Status,
    kind_of,
    plan,
)
from notification_consumer.rendering import EmailContext, Renderer, message_id
from notification_consumer.smtp import MailSession

_log = structlog.get_logger("notification_consumer")


class NotificationHandler:
    """Callable as a `ConsumerSpec.handle`; built once in `service.build`."""

    def __init__(
        self,
        *,
        engine: Engine,
        renderer: Renderer,
        mailer: Mailer,
        sender: str,
        metrics: NotificationMetrics,
        address_template: str | None = None,
        message_id_domain: str = "notifications.dreamscape",
        record_every: int = 50,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._renderer = renderer
        self._mailer = mailer
        self._sender = sender
        self._metrics = metrics
        self._address_template = address_template
        self._domain = message_id_domain
        self._record_every = record_every
        self._now = now
        self._schema_ready = False
        self._unrecorded: list[Outcome] = []

    def __call__(self, batch: Sequence[Inbound]) -> None:
        if self._unrecorded:  # sent by an earlier attempt while the database was down
            self._record(self._unrecorded)
            self._unrecorded = []
        decisions = plan(batch, self._learn(batch), self._address_template)
        pending: list[Outcome] = []

        def keep(outcome: Outcome) -> None:
            pending.append(outcome)
            if len(pending) >= self._record_every:
                self._record(pending)
                pending.clear()

        try:
            for skip in (d for d in decisions if isinstance(d, Skip)):
                for outcome in self._skip(skip):
                    keep(outcome)
            sends = [d for d in decisions if isinstance(d, Send)]
            self._mailer.deliver(sends, self._send, keep)
        finally:
            if pending:  # even when SMTP failed midway: what was sent is never sent again
                self._record_or_keep(pending)

    def _learn(self, batch: Sequence[Inbound]) -> Knowledge:
        """Record the batch's payment facts, then read what planning needs (one transaction)."""
        if not self._schema_ready:  # here, not at start-up, so a database outage is retried
            create_schema(self._engine, MODELS)
            self._schema_ready = True
        events = [inbound.event for inbound in batch]
        notifying = [event for event in events if kind_of(event) is not None]
        try:
            with transaction(self._engine) as session:
                payments = repository.remember_payments(session=session, events=events)
                if not notifying:
                    return Knowledge()
                session.flush()
                return repository.knowledge(session=session, events=notifying, payments=payments)
        except IntegrityError as exc:  # another member inserted the same payment first
            raise TransientError("notification_payment written concurrently; retrying") from exc

    def _skip(self, decision: Skip) -> list[Outcome]:
        kind = decision.kind
        context = _context(decision.inbound, kind)
        if decision.reason == "undeliverable":
            _log.warning("notification.undeliverable", **context, detail=decision.detail)
            return [self._outcome(decision.inbound, kind, "undeliverable", detail=decision.detail)]
        self._metrics.count(kind, decision.reason)
        if decision.reason == "stale":
            _log.info("notification.stale", **context, detail=decision.detail)
        else:
            _log.debug("notification.duplicate", **context)
        return []

    def _send(self, smtp: MailSession, decision: Send) -> Outcome:
        event, kind = decision.inbound.event, decision.kind
        email = self._renderer.render(
            event, EmailContext(kind, decision.recipient, decision.payment)
        )
        message = compose(
            email, sender=self._sender, recipient=decision.recipient, date=self._now()
        )
        started = time.perf_counter()
        refused = smtp.send(message, sender=self._sender, recipient=decision.recipient.address)
        self._metrics.send_seconds.observe(time.perf_counter() - started)
        context = _context(decision.inbound, kind)
        if refused is not None:
            _log.warning(
                "notification.refused", **context, smtp_code=refused.code, reply=refused.reply
            )
            return self._outcome(
                decision.inbound, kind, "failed", smtp_code=refused.code, detail=refused.reply
            )
        _log.debug("notification.sent", **context, language=email.language)
        return self._outcome(decision.inbound, kind, "sent")

    def _outcome(
        self,
        inbound: Inbound,
        kind: Kind,
        status: Status,
        *,
        smtp_code: int | None = None,
        detail: str | None = None,
    ) -> Outcome:
        payload = inbound.event.payload
        return Outcome(
            event_id=inbound.event.event_id,
            kind=kind,
            status=status,
            message_id=message_id(inbound.event.event_id, kind, self._domain),
            booking_id=payload.booking_id,
            payment_id=payload.payment_id,
            smtp_code=smtp_code,
            detail=detail,
        )

    def _record_or_keep(self, outcomes: list[Outcome]) -> None:
        """Record `outcomes`; if the database refuses, keep them for the retry to record first."""
        try:
            self._record(outcomes)
        except BaseException:
            self._unrecorded.extend(outcomes)
            raise

    def _record(self, outcomes: list[Outcome]) -> None:
        with transaction(self._engine) as session:
            repository.record_outcomes(session=session, outcomes=outcomes, now=self._now())
        for outcome in outcomes:
            self._metrics.count(outcome.kind, outcome.status)


def _context(inbound: Inbound, kind: Kind) -> dict[str, object]:
    """Log fields of one notification: the record's coordinates and ids, never an address."""
    payload = inbound.event.payload
    return {
        **record_context(inbound.record, inbound.event),
        "kind": kind,
        "booking_id": payload.booking_id,
        "payment_id": payload.payment_id,
    }
