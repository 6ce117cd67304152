"""contracts/asyncapi.yaml: valid AsyncAPI 3.0, and true to the runtime it describes.

Validity is decided by the official schema of the pinned `@asyncapi/specs` npm package
(fetched once; without npm or the registry these tests skip, and fail under REQUIRE_TOOLS=1).
Truth is checked against the runtime itself: topic names as `Topics` computes them, the
consumer groups, and the headers of letters built by `common.dlq`.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import validators

from common import dlq
from common.records import Record
from common.topics import (
    DEFAULT_TOPICS,
    EVENT_TYPES,
    GROUP_ANALYTICS,
    GROUP_NOTIFICATION,
    GROUP_VOYAGE,
)
from dreamscape_dev.testing import asyncapi_specs
from dreamscape_dev.testing.builders import spec_path
from tests.contracts.conftest import CONTRACTS
from tests.contracts.support import BAD_EVENTS, errors, event_schema, mutated, read, strict_json

GROUPS = (GROUP_VOYAGE, GROUP_NOTIFICATION, GROUP_ANALYTICS)


def official_errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """What the official AsyncAPI schema (draft-07, by its `$schema`) finds wrong with `document`."""
    cls = validators.validator_for(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def resolve(document: dict[str, Any], ref: str) -> Any:
    """The object a local `#/a/b` reference points at (KeyError if none)."""
    assert ref.startswith("#/"), ref
    target: Any = document
    for part in ref[2:].split("/"):
        target = target[part]
    return target


def refs(node: Any) -> list[str]:
    """Every `$ref` in `node`, depth first."""
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def letter_headers(headers: tuple[tuple[str, bytes | None], ...]) -> dict[str, str]:
    """Kafka headers as the string map the AsyncAPI headers schema describes."""
    return {name: (value or b"").decode() for name, value in headers}


def failed_record() -> Record:
    """A record as a consumer read it, with a producer header of its own."""
    return Record(
        DEFAULT_TOPICS.for_event("payment.completed"),
        3,
        1207,
        key=b"pay_abc123xyz",
        value=spec_path("payment.completed").read_bytes(),
        headers=(("content-type", b"application/json"),),
        timestamp_ms=1_766_053_935_000,
    )


def letter(record: Record) -> dlq.DeadLetter:
    return dlq.DeadLetter(record, None, "invalid_value", "payload.amount: too many decimals", 1)


AT = datetime(2025, 12, 18, 10, 33, tzinfo=UTC)


class TestOfficialSchema:
    """The document passes the AsyncAPI initiative's own JSON Schema for 3.0.0."""

    def test_document_is_valid_asyncapi_3_0_0(
        self, asyncapi_schema: dict[str, Any], asyncapi_document: dict[str, Any]
    ) -> None:
        """contracts/asyncapi.yaml has no error against the official AsyncAPI 3.0.0 schema."""
        assert asyncapi_document["asyncapi"] == "3.0.0"
        assert official_errors(asyncapi_schema, asyncapi_document) == []

    @pytest.mark.parametrize(
        ("where", "change"),
        [
            (
                "an operation action",
                lambda d: d["operations"]["voyageServiceDeadLetters"].update(action="consume"),
            ),
            (
                "a kafka operation binding",
                lambda d: next(iter(d["operations"].values()))["bindings"]["kafka"].update(
                    group="x"
                ),
            ),
            (
                "a kafka message binding",
                lambda d: d["components"]["messages"]["paymentFailed"]["bindings"]["kafka"].update(
                    partition=1
                ),
            ),
            ("a channel", lambda d: d["channels"]["paymentFailed"].update(topic="x")),
        ],
    )
    def test_official_schema_catches_a_broken_document(
        self,
        asyncapi_schema: dict[str, Any],
        asyncapi_document: dict[str, Any],
        where: str,
        change: Any,
    ) -> None:
        """A wrong field deep in the document (an operation, a Kafka binding) is reported: the check reads the bindings too."""
        broken = copy.deepcopy(asyncapi_document)
        change(broken)
        assert official_errors(asyncapi_schema, broken) != [], where


class TestTrueToTheRuntime:
    """Channels, groups, keys and headers are the runtime's."""

    def test_channels_are_the_topics_the_runtime_uses(
        self, asyncapi_document: dict[str, Any]
    ) -> None:
        """The channel addresses are the four payment topics and the three groups' DLQ topics as `Topics` computes them."""
        addresses = {c["address"] for c in asyncapi_document["channels"].values()}
        expected = {*DEFAULT_TOPICS.payment_topics, *(DEFAULT_TOPICS.dlq(g) for g in GROUPS)}
        assert addresses == expected

    def test_each_group_receives_each_payment_topic(
        self, asyncapi_document: dict[str, Any]
    ) -> None:
        """Every consumer group has a receive operation on every payment channel, its groupId in the Kafka binding."""
        received = set()
        for operation in asyncapi_document["operations"].values():
            if operation["action"] == "receive":
                channel = resolve(asyncapi_document, operation["channel"]["$ref"])
                (group,) = operation["bindings"]["kafka"]["groupId"]["enum"]
                received.add((group, channel["address"]))
        assert received == {(g, t) for g in GROUPS for t in DEFAULT_TOPICS.payment_topics}

    def test_each_group_sends_to_its_own_dlq(self, asyncapi_document: dict[str, Any]) -> None:
        """Each group has one send operation, on the DLQ channel named after it."""
        sent = [
            resolve(asyncapi_document, o["channel"]["$ref"])["address"]
            for o in asyncapi_document["operations"].values()
            if o["action"] == "send"
        ]
        assert sorted(sent) == sorted(DEFAULT_TOPICS.dlq(g) for g in GROUPS)

    def test_payment_messages_are_keyed_by_payment_id(
        self, asyncapi_document: dict[str, Any]
    ) -> None:
        """Each payment message declares a Kafka key described as the paymentId, with the identifier pattern."""
        for event_type in EVENT_TYPES:
            channel = next(
                c for c in asyncapi_document["channels"].values() if c["title"] == event_type
            )
            (message_ref,) = [m["$ref"] for m in channel["messages"].values()]
            key = resolve(asyncapi_document, message_ref)["bindings"]["kafka"]["key"]
            assert "paymentId" in key["description"]
            example = read(spec_path(event_type))
            assert errors(key, example["payload"]["paymentId"], draft=7) == []

    def test_every_reference_resolves(self, asyncapi_document: dict[str, Any]) -> None:
        """Local `$ref`s point at objects in the document and file `$ref`s at checked-in schemas of the right type."""
        found = refs(asyncapi_document)
        assert len(found) > 20
        for ref in found:
            if ref.startswith("#/"):
                assert isinstance(resolve(asyncapi_document, ref), dict), ref
            else:
                schema = read(CONTRACTS / ref)
                assert schema["$schema"].endswith("2020-12/schema"), ref
        payloads = {
            m["name"]: m["payload"]["$ref"]
            for m in asyncapi_document["components"]["messages"].values()
            if m["name"] in EVENT_TYPES
        }
        assert payloads == {t: f"./schemas/{t}.schema.json" for t in EVENT_TYPES}

    def test_message_examples_match_their_payload_schema(
        self, asyncapi_document: dict[str, Any]
    ) -> None:
        """The spec example embedded in each payment message is the printed one and validates against the message's schema."""
        for event_type in EVENT_TYPES:
            message = next(
                m
                for m in asyncapi_document["components"]["messages"].values()
                if m["name"] == event_type
            )
            (sample,) = message["examples"]
            assert sample["payload"] == read(spec_path(event_type))
            assert errors(event_schema(event_type), sample["payload"]) == []


class TestDeadLetterHeaders:
    """The DLQ headers schemas describe the letters `common.dlq` writes."""

    def test_a_letter_matches_the_letter_headers(self, asyncapi_document: dict[str, Any]) -> None:
        """A letter built by the runtime satisfies deadLetterHeaders, which requires exactly its `dlq.*` headers."""
        schemas = asyncapi_document["components"]["schemas"]
        record = dlq.to_dlq_record(
            letter(failed_record()),
            dlq_topic="dreamscape.dlq.voyage-service",
            group=GROUP_VOYAGE,
            failed_at=AT,
        )
        headers = letter_headers(record.headers)
        assert errors(schemas["deadLetterHeaders"], headers, draft=7) == []
        assert set(schemas["deadLetterHeaders"]["required"]) == {
            n for n in headers if n.startswith(dlq.PREFIX)
        }
        assert headers["content-type"] == "application/json"  # the record's own header follows

    def test_a_marker_matches_the_marker_schemas(self, asyncapi_document: dict[str, Any]) -> None:
        """A marker letter's headers and JSON value satisfy deadLetterMarkerHeaders and deadLetterMarker."""
        schemas = asyncapi_document["components"]["schemas"]
        record = dlq.to_marker_record(
            letter(failed_record()),
            dlq_topic="dreamscape.dlq.voyage-service",
            group=GROUP_VOYAGE,
            failed_at=AT,
            refused="MSG_SIZE_TOO_LARGE",
        )
        headers = letter_headers(record.headers)
        assert errors(schemas["deadLetterMarkerHeaders"], headers, draft=7) == []
        assert set(schemas["deadLetterMarkerHeaders"]["required"]) == set(headers)
        assert errors(schemas["deadLetterMarker"], strict_json(record.value or b""), draft=7) == []

    def test_a_replayed_record_matches_the_payment_headers(
        self, asyncapi_document: dict[str, Any]
    ) -> None:
        """A record sent back by replay carries `dlq.replayed.from` in the form paymentHeaders describes."""
        schemas = asyncapi_document["components"]["schemas"]
        letter_record = dlq.to_dlq_record(
            letter(failed_record()),
            dlq_topic="dreamscape.dlq.voyage-service",
            group=GROUP_VOYAGE,
            failed_at=AT,
        )
        stored = Record(
            "dreamscape.dlq.voyage-service",
            0,
            12,
            letter_record.key,
            letter_record.value,
            letter_record.headers,
        )
        replayed = dlq.to_replay_record(dlq.read_entry(stored), "dreamscape.dlq.voyage-service")
        headers = letter_headers(replayed.headers)
        assert headers[dlq.H_REPLAYED_FROM] == "dreamscape.dlq.voyage-service:0:12"
        assert errors(schemas["paymentHeaders"], headers, draft=7) == []
        assert (
            errors(schemas["paymentHeaders"], {dlq.H_REPLAYED_FROM: "no position"}, draft=7) != []
        )

    def test_every_dlq_header_the_runtime_knows_is_described(
        self, asyncapi_document: dict[str, Any]
    ) -> None:
        """Each `dlq.H_*` header name of `common.dlq` appears in one of the document's headers schemas."""
        schemas = asyncapi_document["components"]["schemas"]
        described = {
            name
            for key in ("paymentHeaders", "deadLetterHeaders", "deadLetterMarkerHeaders")
            for name in schemas[key]["properties"]
        }
        known = {value for name, value in vars(dlq).items() if name.startswith("H_")}
        assert {dlq.H_ERROR_TYPE, dlq.H_REPLAYED_FROM, dlq.H_ORIGINAL_SHA256} <= known
        assert known <= described


class TestDraft7Readers:
    """AsyncAPI tools read payload schemas as draft-07: the generated ones mean the same there."""

    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    def test_same_verdicts_under_draft_7(self, event_type: str) -> None:
        """The spec example passes and each bad event fails under draft-07 as under 2020-12."""
        schema = event_schema(event_type)
        example = read(spec_path(event_type))
        assert errors(schema, example, draft=7) == []
        cases = [mutate for _, t, mutate, _ in BAD_EVENTS if t == event_type]
        assert cases
        for mutate in cases:
            document = mutated(event_type, mutate)
            assert errors(schema, document) != []
            assert errors(schema, document, draft=7) != []


class TestPinnedPackage:
    """The official schema comes from the pinned package and nothing else."""

    def test_a_tarball_other_than_the_pinned_one_is_refused(self, tmp_path: Path) -> None:
        """A tarball whose SHA-512 is not the pinned integrity raises (a failure, never a skip)."""
        tarball = tmp_path / "asyncapi-specs-6.11.1.tgz"
        tarball.write_bytes(b"not the package")
        with pytest.raises(RuntimeError, match="pinned integrity"):
            asyncapi_specs._check_integrity(tarball)
