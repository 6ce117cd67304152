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

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from common.business import Claimed, claim_facts
from common.db import transaction
from common.errors import PermanentError, TransientError
from common.logs import record_context
from common.records import Inbound
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
from notification_consumer.message import compose
from notification_consumer.metrics import NotificationMetrics
from notification_consumer.presence import Presence
from notification_consumer.rendering import EmailContext, Renderer, message_id
from notification_consumer.smtp import Deferred, MailSession, SmtpUnavailable

_log = structlog.get_logger("notification_consumer")


class ShuttingDown(TransientError):  # noqa: N818 - a state, like SmtpUnavailable
    """The process is stopping: the batch is left undone for its records to come again."""


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
        defer_attempts: int = 3,
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
        self._sender = sender
        self._metrics = metrics
        self._address_template = address_template
        self._domain = message_id_domain
        self._record_every = record_every
        self._now = now
        self._unrecorded: list[Outcome] = []
        self._defer_attempts = defer_attempts
        #: Per notification deferred by its recipient (4xx at RCPT): attempts so far, and, once
        #: they ran out, the rejection to hand back for its record (it leaves this batch).
        self._deferrals: dict[tuple[str, str], int] = {}
        self._given_up: dict[tuple[str, str], PermanentError] = {}
        self._stopping = threading.Event()

    def request_stop(self) -> None:
        """Shutdown was asked for: start no new send (signal-safe: it sets a flag).

        The call in progress then records every email already accepted and raises, so its
        records are delivered again (to this member after a restart, or to the next owner)
        rather than having their offsets stored.
        """
        self._stopping.set()

    def close(self) -> None:
        """Release this member's presence lock (its own connection) once the loop stopped."""
        self._presence.close()

    def __call__(self, batch: Sequence[Inbound]) -> dict[Inbound, PermanentError]:
        if self._unrecorded:  # sent by an earlier attempt while the database was down
            self._record(self._unrecorded)
            self._unrecorded = []
        decisions = plan(batch, self._learn(batch), self._address_template)
        pending: list[Outcome] = []
        deferred: list[Outcome] = []
        answered = 0  # sends the server took or refused for good in this attempt

        def keep(outcome: Outcome) -> None:
            nonlocal answered
            if outcome.status == "deferred":
                deferred.append(outcome)
                return
            answered += outcome.status in ("sent", "failed")
            pending.append(outcome)
            if len(pending) >= self._record_every:
                self._record(pending)
                pending.clear()

        try:
            for skip in (d for d in decisions if isinstance(d, Skip)):
                for outcome in self._skip(skip):
                    keep(outcome)
            sends = [
                d
                for d in decisions
                if isinstance(d, Send) and (d.inbound.event.event_id, d.kind) not in self._given_up
            ]
            sends, elsewhere = self._claim(sends)
            self._mailer.deliver(sends, self._send, keep)
            if deferred:
                to: dict[tuple[str, str], str] = {
                    (d.inbound.event.event_id, d.kind): d.recipient.address for d in sends
                }
                pending.extend(self._settle_deferrals(deferred, answered, to))
            if elsewhere:
                raise TransientError(
                    f"{elsewhere} notification(s) being sent by another member; retrying until "
                    "it records them, or is gone (or its claim expires)"
                )
        finally:
            if pending:  # even when SMTP failed midway: what was sent is never sent again
                self._record_or_keep(pending)
        return self._rejections(batch)

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
            self._mailer.deliver(sends, self._send, keep)
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

    def _settle_deferrals(
        self, deferred: list[Outcome], answered: int, to: Mapping[tuple[str, str], str]
    ) -> list[Outcome]:
        """The deferred outcomes to record now (attempts used up); raises to retry the others.

        Every recipient deferred with none answered means the server, not the recipients,
        is the problem: an outage, retried without limit and without counting. Otherwise a
        deferred notification is retried with the batch (the run loop backs off) until it
        has had `defer_attempts`; then it is recorded `deferred` and its record rejected as
        `smtp_deferred`, so it holds neither the batch nor other partitions any longer.
        """
        recipients = {to.get((o.event_id, o.kind)) for o in deferred}
        if not answered and len(recipients) > 1:
            raise SmtpUnavailable(
                f"every recipient deferred ({deferred[0].smtp_code} {deferred[0].detail}); "
                "the server is not taking mail"
            )
        exhausted, again = [], []
        for outcome in deferred:
            key = (outcome.event_id, outcome.kind)
            attempts = self._deferrals[key] = self._deferrals.get(key, 0) + 1
            if attempts < self._defer_attempts:
                again.append(outcome)
                continue
            del self._deferrals[key]
            exhausted.append(outcome)
            self._given_up[key] = PermanentError(
                f"recipient deferred {attempts} times: {outcome.smtp_code} {outcome.detail}",
                error_type="smtp_deferred",
            )
        if again:
            self._unrecorded.extend(exhausted)  # recorded first by the retry
            raise SmtpUnavailable(
                f"{len(again)} recipient(s) deferred ({again[0].smtp_code}); retrying them"
            )
        return exhausted

    def _rejections(self, batch: Sequence[Inbound]) -> dict[Inbound, PermanentError]:
        """The records of this batch whose notification was given up on (see `_settle_deferrals`)."""
        if not self._given_up:
            return {}
        rejected = {}
        for inbound in batch:
            kind = kind_of(inbound.event)
            key = (inbound.event.event_id, kind or "")
            if key in self._given_up:
                rejected[inbound] = self._given_up.pop(key)
        return rejected

    def _learn(self, batch: Sequence[Inbound]) -> Knowledge:
        """Record the batch's payment facts, then read what planning needs (one transaction)."""
        events = [inbound.event for inbound in batch]
        notifying = [event for event in events if kind_of(event) is not None]
        try:
            with transaction(self._engine) as session:
                payments = store.remember_payments(session=session, events=events)
                if not notifying:
                    return Knowledge()
                session.flush()
                claimed = claim_facts(
                    session=session, consumer=self._consumer, events=notifying, now=self._now()
                )
                known = store.knowledge(session=session, events=notifying, payments=payments)
            self._on_claimed(claimed)
            restated = {
                e: claimed.first_event[e] for e in claimed.verdicts if not claimed.applies(e)
            }
            return replace(known, restated=restated)
        except IntegrityError as exc:  # another member inserted the same payment first
            raise TransientError("notification_payment written concurrently; retrying") from exc

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

    def _send(self, smtp: MailSession, decision: Send) -> Outcome:
        if self._stopping.is_set():
            raise ShuttingDown("stopping: no new email is sent")
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
            store.record_outcomes(session=session, outcomes=outcomes, now=self._now())
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
