"""Planning without any service: which events get an email, and why the others do not."""

from __future__ import annotations

from dreamscape_dev.testing.builders import event, inbound
from notification_consumer.domain import Knowledge, Recipient, Send, Skip, plan

USER = "usr_123456789"
CONTACT = {USER: Recipient("zoe@example.test", "Zoé", "en")}


def test_only_completed_failed_and_refunded_events_notify() -> None:
    """initiated yields no decision; the three others yield a Send each, in batch order."""
    batch = [
        inbound(event(t))
        for t in ("payment.initiated", "payment.completed", "payment.failed", "payment.refunded")
    ]
    decisions = plan(batch, Knowledge(contacts=CONTACT), None)
    assert [(type(d), d.kind) for d in decisions] == [
        (Send, "receipt"),
        (Send, "payment_failed"),
        (Send, "refund"),
    ]


def test_a_failure_for_a_paid_booking_is_stale() -> None:
    """A failure whose booking has a completed payment is skipped as stale."""
    failed = inbound(event("payment.failed"))
    [decision] = plan([failed], Knowledge(paid_bookings=frozenset({"booking_456def"})), None)
    assert isinstance(decision, Skip)
    assert decision.reason == "stale"


def test_a_refund_for_a_paid_booking_is_still_sent() -> None:
    """Staleness applies to failure notices only."""
    refunded = inbound(event("payment.refunded"))
    knowledge = Knowledge(paid_bookings=frozenset({"booking_456def"}), contacts=CONTACT)
    [decision] = plan([refunded], knowledge, None)
    assert isinstance(decision, Send)


def test_already_notified_and_repeated_events_are_duplicates() -> None:
    """An (eventId, kind) already recorded, or seen earlier in the batch, is skipped as a duplicate."""
    recorded, repeated = event("payment.completed"), event("payment.completed")
    knowledge = Knowledge(notified=frozenset({(recorded["eventId"], "receipt")}), contacts=CONTACT)
    batch = [inbound(recorded), inbound(repeated), inbound(repeated)]
    reasons = [getattr(d, "reason", "send") for d in plan(batch, knowledge, None)]
    assert reasons == ["duplicate", "send", "duplicate"]


def test_recipients_come_from_contacts_then_the_template() -> None:
    """A contact row wins; without one the address template is used; without both it is undeliverable."""
    completed = inbound(event("payment.completed"))
    [from_contact] = plan([completed], Knowledge(contacts=CONTACT), "{user_id}@example.test")
    [from_template] = plan([completed], Knowledge(), "{user_id}@example.test")
    [nowhere] = plan([completed], Knowledge(), None)
    assert isinstance(from_contact, Send)
    assert from_contact.recipient.address == "zoe@example.test"
    assert isinstance(from_template, Send)
    assert from_template.recipient.address == f"{USER}@example.test"
    assert isinstance(nowhere, Skip)
    assert nowhere.reason == "undeliverable"


def test_an_invalid_contact_address_is_undeliverable() -> None:
    """A contact whose address an email header cannot carry is undeliverable, not a crash."""
    completed = inbound(event("payment.completed"))
    bad = {USER: Recipient("not an address")}
    [decision] = plan([completed], Knowledge(contacts=bad), None)
    assert isinstance(decision, Skip)
    assert decision.reason == "undeliverable"
