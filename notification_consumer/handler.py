"""The batch handler: the glue between the database, the pure planning and rendering, and SMTP.

Per batch:

1. one transaction records the payment facts of every event and reads back what planning
   needs (already notified? booking paid? contact? earlier facts of the payment?);
2. `notifications.plan` decides, per notifying event, to send or why not;
3. emails are rendered, written as wire bytes (`message`) and sent over `SMTP_CONNECTIONS`
   connections kept from call to call (`mailer`); every `record_every` outcomes, and at the end of the batch whatever
   happened (even when SMTP failed midway), the final outcomes go to `sent_notification`.

Exactly once in effect: a (eventId, kind) with a recorded outcome is never sent again, and
an outcome is recorded only after the server accepted (or refused) the message. The
outcomes of a call are recorded before it ends, whatever ended it: if the database refuses,
the write is retried under the run loop's policy within the call
(`common.retry.until_durable`), so nothing is kept for a later call. A process killed
between "accepted" and "recorded" resends at most `record_every` + `SMTP_CONNECTIONS`
messages when the records are redelivered, each with the Message-ID it had the first time
(`<eventId.kind@domain>`), so receiving systems can drop the copy (docs/notification.md,
"Exactly once").

SMTP and database outages raise transient errors (the run loop pauses and retries the batch;
what was already recorded is skipped); 5xx refusals and missing addresses are recorded
outcomes. A recipient deferring its message (4xx at RCPT) while others are accepted is that
record's: it is returned as `RetryLater`, and the run loop calls again with it alone up to
`SMTP_DEFER_ATTEMPTS` times, then gives up (the handler's `give_up` records it `deferred`)
and dead-letters it as `smtp_deferred`. Only a bug (say, a template error) fails a record
otherwise. This handler keeps no retry state across calls.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import NamedTuple

import structlog
from sqlalchemy import Engine

from common.business import Claimed, claim_facts
from common.db import transaction
from common.errors import RetryLater, ShutdownRequested, TransientError
from common.logs import record_context
from common.records import Inbound
from common.retry import until_durable
from common.topics import GROUP_NOTIFICATION
from notification_consumer import store
from notification_consumer.domain import (
    Kind,
    Knowledge,
    Outcome,
    Send,
    Skip,
    Status,
    kind_of,
    plan,
)
from notification_consumer.mailer import Mailer
from notification_consumer.message import MessageWriter
from notification_consumer.metrics import NotificationMetrics
from notification_consumer.presence import Presence
from notification_consumer.rendering import EmailContext, Renderer, message_id
from notification_consumer.smtp import Deferred, MailSession, SmtpUnavailable

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
        consumer: str = GROUP_NOTIFICATION,
        on_claimed: Callable[[Claimed], None] = lambda _claimed: None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._consumer = consumer
        self._on_claimed = on_claimed
        self._owner = uuid.uuid4().hex[:16]  # this process, in `notification_claim`
        self._presence = Presence(engine, self._owner)
        self._engine = engine
        self._renderer = renderer
        self._mailer = mailer
        self._writer = MessageWriter(sender)  # the From header encoded once
        self._metrics = metrics
        self._address_template = address_template
        self._domain = message_id_domain
        self._record_every = record_every
        self._now = now
        self._stopping = threading.Event()

    def request_stop(self) -> None:
        """Shutdown was asked for: start no new send (signal-safe: it sets a flag).

        The call in progress then records every email already accepted and raises
        `ShutdownRequested`, so its records are delivered again (to this member after a
        restart, or to the next owner) rather than having their offsets stored.
        """
        self._stopping.set()

    def close(self) -> None:
        """Release this member's presence lock (its own connection) once the loop stopped."""
        self._presence.close()

    def __call__(self, batch: Sequence[Inbound]) -> dict[Inbound, RetryLater]:
        decisions = plan(batch, self._learn(batch), self._address_template)
        pending: list[Outcome] = []
        deferred: list[Outcome] = []
        answered = 0  # sends the server took or refused for good in this call

        def keep(outcome: Outcome) -> None:
            nonlocal answered
            if outcome.status == "deferred":
                deferred.append(outcome)
                return
            answered += outcome.status in ("sent", "failed")
            pending.append(outcome)
            if len(pending) >= self._record_every:
                self._record(pending)  # if refused, the mailer starts no new send
                pending.clear()

        sends: list[Send] = []
        try:
            for skip in (d for d in decisions if isinstance(d, Skip)):
                for outcome in self._skip(skip):
                    keep(outcome)
            sends, elsewhere = self._claim([d for d in decisions if isinstance(d, Send)])
            self._mailer.deliver(self._written(sends), self._send, keep)
            if deferred and not answered and _recipients(sends, deferred) > 1:
                # Every recipient deferred, none answered: the server is the problem, not
                # the recipients. An outage, retried without limit and without counting.
                raise SmtpUnavailable(
                    f"every recipient deferred ({deferred[0].smtp_code} {deferred[0].detail}); "
                    "the server is not taking mail"
                )
            if elsewhere:
                raise TransientError(
                    f"{elsewhere} notification(s) being sent by another member; retrying until "
                    "it records them, or is gone (or its claim expires)"
                )
        finally:
            if pending:  # even when SMTP failed midway: what was sent is never sent again
                until_durable(lambda: self._record(pending))
        return self._retry_later(sends, deferred)

    def _retry_later(
        self, sends: Sequence[Send], deferred: list[Outcome]
    ) -> dict[Inbound, RetryLater]:
        """The records whose recipient deferred its message, for the run loop to call again.

        Once the loop gives up on one (`SMTP_DEFER_ATTEMPTS` calls), `give_up` records it
        `deferred` (not final: a replay of its `smtp_deferred` letter sends it).
        """
        if not deferred:
            return {}
        inbound = {(d.inbound.event.event_id, d.kind): d.inbound for d in sends}
        return {
            inbound[(o.event_id, o.kind)]: RetryLater(
                f"recipient deferred the message: {o.smtp_code} {o.detail}",
                error_type="smtp_deferred",
                give_up=partial(self._record, [o]),
            )
            for o in deferred
        }

    def resend(self, batch: Sequence[Inbound]) -> dict[str, int]:
        """Send the notifications of `batch` recorded `undeliverable` that can be sent now.

        For `notification-consumer resend`: a contact imported since, say. Each goes out once,
        with the Message-ID it was given; what still has no address stays `undeliverable`.
        Returns outcome → count.
        """
        knowledge = self._learn(batch)
        retry = {(i.event.event_id, kind_of(i.event)) for i in batch}
        decisions = plan(
            batch,
            replace(knowledge, notified=knowledge.notified - retry),
            self._address_template,
        )
        results: dict[str, int] = {}
        pending: list[Outcome] = []

        def keep(outcome: Outcome) -> None:
            pending.append(outcome)
            results[outcome.status] = results.get(outcome.status, 0) + 1

        try:
            sends = [d for d in decisions if isinstance(d, Send)]
            self._mailer.deliver(self._written(sends), self._send, keep)
        finally:
            if pending:
                self._record(pending)
        for decision in decisions:
            if isinstance(decision, Skip):
                results[decision.reason] = results.get(decision.reason, 0) + 1
        return results

    def _claim(self, sends: list[Send]) -> tuple[list[Send], int]:
        """The sends this member holds a claim for, and how many another member is sending."""
        if not sends:
            return sends, 0
        keys = [(d.inbound.event.event_id, d.kind) for d in sends]
        self._presence.ensure()  # held before any claim names this member
        with transaction(self._engine) as session:
            held = store.claim_sends(session=session, keys=keys, owner=self._owner, now=self._now())
        mine = [d for d, key in zip(sends, keys, strict=True) if key in held]
        return mine, len(sends) - len(mine)

    def _learn(self, batch: Sequence[Inbound]) -> Knowledge:
        """Record the batch's payment facts, then read what planning needs (one transaction)."""
        events = [inbound.event for inbound in batch]
        notifying = [event for event in events if kind_of(event) is not None]
        with transaction(self._engine) as session:
            store.remember_payments(session=session, events=events)
            if not notifying:
                return Knowledge()
            claimed = claim_facts(
                session=session, consumer=self._consumer, events=notifying, now=self._now()
            )
            known = store.knowledge(session=session, events=notifying)
        self._on_claimed(claimed)
        restated = {e: claimed.first_event[e] for e in claimed.verdicts if not claimed.applies(e)}
        return replace(known, restated=restated)

    def _skip(self, decision: Skip) -> list[Outcome]:
        kind = decision.kind
        context = _context(decision.inbound, kind)
        if decision.reason == "undeliverable":
            _log.warning("notification.undeliverable", **context, detail=decision.detail)
            value = decision.inbound.record.value or b""
            outcome = self._outcome(decision.inbound, kind, "undeliverable", detail=decision.detail)
            return [replace(outcome, event_json=value.decode("utf-8", "replace"))]
        self._metrics.count(kind, decision.reason)
        if decision.reason == "stale":
            _log.info("notification.stale", **context, detail=decision.detail)
        else:
            _log.debug("notification.duplicate", **context)
        return []

    def _written(self, sends: Sequence[Send]) -> Iterator[_Written]:
        """Each send's email rendered and written, as the mailer draws it (on this thread)."""
        for decision in sends:
            if self._stopping.is_set():
                raise ShutdownRequested("stopping: no new email is sent")
            email = self._renderer.render(
                decision.inbound.event,
                EmailContext(decision.kind, decision.recipient, decision.payment),
            )
            message = self._writer.write(email, recipient=decision.recipient, date=self._now())
            yield _Written(decision, message, email.language)

    def _send(self, smtp: MailSession, written: _Written) -> Outcome:
        if self._stopping.is_set():
            raise ShutdownRequested("stopping: no new email is sent")
        decision, kind = written.decision, written.decision.kind
        started = time.perf_counter()
        refused = smtp.send(
            written.message,
            sender=self._writer.envelope_from,
            recipient=decision.recipient.address,
        )
        self._metrics.send_seconds.observe(time.perf_counter() - started)
        context = _context(decision.inbound, kind)
        if isinstance(refused, Deferred):
            _log.warning(
                "notification.deferred", **context, smtp_code=refused.code, reply=refused.reply
            )
            return self._outcome(
                decision.inbound, kind, "deferred", smtp_code=refused.code, detail=refused.reply
            )
        if refused is not None:
            _log.warning(
                "notification.refused", **context, smtp_code=refused.code, reply=refused.reply
            )
            return self._outcome(
                decision.inbound, kind, "failed", smtp_code=refused.code, detail=refused.reply
            )
        _log.debug("notification.sent", **context, language=written.language)
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

    def _record(self, outcomes: list[Outcome]) -> None:
        with transaction(self._engine) as session:
            store.record_outcomes(session=session, outcomes=outcomes, now=self._now())
        for outcome in outcomes:
            self._metrics.count(outcome.kind, outcome.status)


class _Written(NamedTuple):
    """A send's email, rendered and written as wire bytes, ready for any connection."""

    decision: Send
    message: bytes
    language: str


def _recipients(sends: Sequence[Send], deferred: list[Outcome]) -> int:
    """How many distinct addresses the `deferred` outcomes were for."""
    to = {(d.inbound.event.event_id, d.kind): d.recipient.address for d in sends}
    return len({to.get((o.event_id, o.kind)) for o in deferred})


def _context(inbound: Inbound, kind: Kind) -> dict[str, object]:
    """Log fields of one notification: the record's coordinates and ids, never an address."""
    payload = inbound.event.payload
    return {
        **record_context(inbound.record, inbound.event),
        "kind": kind,
        "booking_id": payload.booking_id,
        "payment_id": payload.payment_id,
    }
