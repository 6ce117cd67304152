"""The Kafka ACLs each consumer service needs, and no more: least privilege, from the code.

A service reads the four payment topics as a member of its group and writes only its own
dead-letter topic, so its principal needs:

* READ and DESCRIBE on each payment topic (fetch, metadata, committed offsets, lag);
* READ on its consumer group (join, heartbeat, commit; READ implies DESCRIBE);
* WRITE and DESCRIBE on its DLQ topic. The DLQ producer is idempotent: since Kafka 3.0
  (KIP-679) a producer id is granted to a principal that may WRITE to any topic, so no
  cluster-wide IDEMPOTENT_WRITE is needed. Readiness describes the DLQ topic (DESCRIBE).

The operators' tools need their own: `dreamscape dlq list` READ and DESCRIBE on the DLQ topic,
`dreamscape dlq replay` WRITE and DESCRIBE on the payment topics as well. Each rule is a
literal (never prefixed) ALLOW from any host. `docs/security.md` shows `acl_table`'s output,
checked by a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from common.topics import (
    DEFAULT_TOPICS,
    GROUP_ANALYTICS,
    GROUP_NOTIFICATION,
    GROUP_VOYAGE,
    Topics,
)

ResourceType = Literal["TOPIC", "GROUP"]
Operation = Literal["READ", "WRITE", "DESCRIBE"]

SERVICE_GROUPS: Final = {
    "voyage_consumer": GROUP_VOYAGE,
    "notification_consumer": GROUP_NOTIFICATION,
    "analytics_consumer": GROUP_ANALYTICS,
}


@dataclass(frozen=True, slots=True, order=True)
class Acl:
    """One ALLOW rule: `principal` may perform `operation` on the literal resource named."""

    principal: str
    resource_type: ResourceType
    resource_name: str
    operation: Operation


def _grant(
    principal: str, resource_type: ResourceType, name: str, *operations: Operation
) -> list[Acl]:
    return [Acl(principal, resource_type, name, operation) for operation in operations]


def service_acls(
    principal: str, group: str, topics: Topics = DEFAULT_TOPICS, dlq_topic: str | None = None
) -> list[Acl]:
    """What a consumer service running as `principal` in `group` needs (DLQ: the group's own)."""
    acls = [
        a for t in topics.payment_topics for a in _grant(principal, "TOPIC", t, "READ", "DESCRIBE")
    ]
    acls += _grant(principal, "GROUP", group, "READ")
    acls += _grant(principal, "TOPIC", dlq_topic or topics.dlq(group), "WRITE", "DESCRIBE")
    return acls


def dlq_reader_acls(principal: str, dlq_topic: str) -> list[Acl]:
    """What `dreamscape dlq list` needs to read `dlq_topic`."""
    return _grant(principal, "TOPIC", dlq_topic, "READ", "DESCRIBE")


def dlq_replayer_acls(principal: str, dlq_topic: str, topics: Topics = DEFAULT_TOPICS) -> list[Acl]:
    """What `dreamscape dlq replay` needs: read the DLQ, write the payment topics back."""
    writes = [
        a for t in topics.payment_topics for a in _grant(principal, "TOPIC", t, "WRITE", "DESCRIBE")
    ]
    return dlq_reader_acls(principal, dlq_topic) + writes


def acl_table(acls: list[Acl]) -> str:
    """`acls` as a Markdown table, one row per resource with its operations."""
    rows: dict[tuple[str, str, str], list[str]] = {}
    for acl in acls:
        rows.setdefault((acl.principal, acl.resource_type, acl.resource_name), []).append(
            acl.operation
        )
    lines = ["| Principal | Resource | Name | Operations |", "|---|---|---|---|"]
    lines += [
        f"| `{principal}` | {kind} | `{name}` | {', '.join(operations)} |"
        for (principal, kind, name), operations in rows.items()
    ]
    return "\n".join(lines)


def kafka_acls_commands(acls: list[Acl], bootstrap: str = "$BOOTSTRAP") -> str:
    """The `kafka-acls` commands that create `acls`, one per resource."""
    rows: dict[tuple[str, str, str], list[str]] = {}
    for acl in acls:
        rows.setdefault((acl.principal, acl.resource_type, acl.resource_name), []).append(
            acl.operation
        )
    return "\n".join(
        f"kafka-acls --bootstrap-server {bootstrap} --command-config admin.properties --add "
        f"--allow-principal {principal} "
        + " ".join(f"--operation {op.capitalize()}" for op in operations)
        + f" --{kind.lower()} {name}"
        for (principal, kind, name), operations in rows.items()
    )


def documented_acls() -> str:
    """What `docs/security.md` shows: each service as `User:<group>`, then the tools."""
    sections = []
    for module, group in SERVICE_GROUPS.items():
        acls = service_acls(f"User:{group}", group)
        sections.append(
            f"{module} (`User:{group}`):\n\n{acl_table(acls)}\n\n"
            f"```sh\n{kafka_acls_commands(acls)}\n```"
        )
    dlq = DEFAULT_TOPICS.dlq(GROUP_VOYAGE)
    sections.append(
        f"`dreamscape dlq list --group {GROUP_VOYAGE}` (`User:operator`):\n\n"
        f"{acl_table(dlq_reader_acls('User:operator', dlq))}"
    )
    sections.append(
        f"`dreamscape dlq replay --group {GROUP_VOYAGE}` (`User:operator`):\n\n"
        f"{acl_table(dlq_replayer_acls('User:operator', dlq))}"
    )
    return "\n\n".join(sections)
