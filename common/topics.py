"""Topic names, event types and consumer-group ids: the names the services share.

The spec fixes the names (`dreamscape.payment.<event>`, event type `payment.<event>`).
A `Topics` value adds an optional prefix so several independent deployments (or tests)
can share one cluster without seeing each other's records; with no prefix it yields
exactly the spec's names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

PAYMENT_INITIATED: Final = "payment.initiated"
PAYMENT_COMPLETED: Final = "payment.completed"
PAYMENT_FAILED: Final = "payment.failed"
PAYMENT_REFUNDED: Final = "payment.refunded"

EVENT_TYPES: Final = (PAYMENT_INITIATED, PAYMENT_COMPLETED, PAYMENT_FAILED, PAYMENT_REFUNDED)

TOPIC_PAYMENT_INITIATED: Final = "dreamscape.payment.initiated"
TOPIC_PAYMENT_COMPLETED: Final = "dreamscape.payment.completed"
TOPIC_PAYMENT_FAILED: Final = "dreamscape.payment.failed"
TOPIC_PAYMENT_REFUNDED: Final = "dreamscape.payment.refunded"

GROUP_VOYAGE: Final = "voyage-service"
GROUP_NOTIFICATION: Final = "notification-service"
GROUP_ANALYTICS: Final = "analytics-service"

DLQ_TOPIC_TEMPLATE: Final = "dreamscape.dlq.{group}"


@dataclass(frozen=True, slots=True)
class Topics:
    """The payment topics under an optional prefix, and the mapping back to event types."""

    prefix: str = ""

    def for_event(self, event_type: str) -> str:
        """The topic that carries `event_type` (`payment.completed` → `dreamscape.payment.completed`)."""
        return f"{self.prefix}dreamscape.{event_type}"

    def event_type_of(self, topic: str) -> str | None:
        """The event type a topic carries, or None for a topic that is not a payment topic."""
        base = topic.removeprefix(self.prefix) if self.prefix else topic
        if not base.startswith("dreamscape.payment."):
            return None
        event_type = base.removeprefix("dreamscape.")
        return event_type if event_type in EVENT_TYPES else None

    @property
    def payment_topics(self) -> tuple[str, ...]:
        """All four payment topics, in lifecycle order."""
        return tuple(self.for_event(t) for t in EVENT_TYPES)

    def dlq(self, group: str) -> str:
        """The default dead-letter topic of a consumer group."""
        return self.prefix + DLQ_TOPIC_TEMPLATE.format(group=group)


DEFAULT_TOPICS: Final = Topics()
