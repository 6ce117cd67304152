"""The JSON Schemas in contracts/: generated from the models, and agreeing with the parser.

A producer validating against these schemas should be told "no" for every event the
consumers reject, wherever JSON Schema can say so; the cases it cannot are pinned here too,
so docs/contracts.md cannot claim more or less than the schemas do.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Final, get_args

import pytest
from jsonschema import Draft202012Validator

from common.errors import InvalidEvent, RejectionReason
from common.parsing import parse_event
from common.topics import DEFAULT_TOPICS, EVENT_TYPES
from dreamscape_dev import contracts
from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing.builders import to_json
from tests.contracts.conftest import CONTRACTS
from tests.contracts.support import (
    BAD_EVENTS,
    Mutation,
    both,
    errors,
    event_schema,
    example,
    mutated,
    parser_verdict,
    setter,
    strict_json,
)


class TestGenerated:
    """contracts/ is what the generator makes of today's models."""

    def test_checked_in_contract_matches_the_models(self) -> None:
        """Regenerating contracts/ in memory gives exactly the checked-in files (else `make contracts`)."""
        assert contracts.stale(CONTRACTS) == [], "contracts/ is stale: run `make contracts`"

    def test_drift_is_detected_and_rewritten(self, tmp_path: Path) -> None:
        """A changed schema, a missing file and a left-over schema are all reported, and `write` fixes them."""
        contracts.write(tmp_path)
        assert contracts.stale(tmp_path) == []
        changed = tmp_path / contracts.schema_file("payment.failed")
        changed.write_text(changed.read_text().replace('"maxLength": 256', '"maxLength": 255'))
        (tmp_path / contracts.ASYNCAPI_FILE).unlink()
        (tmp_path / "schemas" / "payment.disputed.schema.json").write_text("{}")
        expected = [
            "asyncapi.yaml",
            "schemas/payment.disputed.schema.json",
            str(changed.relative_to(tmp_path)),
        ]
        assert contracts.stale(tmp_path) == sorted(expected)
        assert contracts.write(tmp_path) == sorted(expected)
        assert contracts.stale(tmp_path) == []
        assert not (tmp_path / "schemas" / "payment.disputed.schema.json").exists()

    def test_check_mode_exits_1_on_a_stale_directory(self, tmp_path: Path) -> None:
        """`python -m dreamscape_dev.contracts --check` fails on a stale copy and passes on a fresh one."""
        assert contracts.main(["--check", "--dir", str(tmp_path)]) == 1
        assert contracts.main(["--dir", str(tmp_path)]) == 0
        assert contracts.main(["--check", "--dir", str(tmp_path)]) == 0

    def test_rendering_is_deterministic(self) -> None:
        """Two renders are identical, so regenerating without a model change is a no-op in git."""
        assert contracts.render() == contracts.render()


class TestSchemasAreSchemas:
    """Each file is a well-formed draft 2020-12 schema with its own `$id`."""

    @pytest.mark.parametrize("name", ["envelope", *EVENT_TYPES])
    def test_schema_is_valid_against_the_2020_12_metaschema(self, name: str) -> None:
        """The schema declares draft 2020-12 and passes that draft's metaschema."""
        schema = event_schema(name)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)

    def test_ids_are_unique_and_absolute(self) -> None:
        """Every schema has an absolute `$id` of its own."""
        ids = [event_schema(name)["$id"] for name in ["envelope", *EVENT_TYPES]]
        assert len(set(ids)) == len(ids)
        assert all(i.startswith(contracts.BASE_ID) and i.endswith(".schema.json") for i in ids)

    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    def test_schema_states_the_parsers_constraints(self, event_type: str) -> None:
        """eventId pattern, eventType (one value), version pattern, amount bounds, currency enum and timestamp format are stated."""
        schema = event_schema(event_type)
        properties = schema["properties"]
        payload = schema["$defs"][schema["properties"]["payload"]["$ref"].rsplit("/", 1)[1]]
        amount = payload["properties"][
            "refundAmount" if event_type == "payment.refunded" else "amount"
        ]
        assert properties["eventType"]["enum"] == [event_type]
        assert properties["eventId"]["pattern"].startswith("^[0-9a-fA-F]{8}-")
        assert properties["version"]["pattern"] == r"^1(\.[0-9]+){0,2}$"
        assert properties["timestamp"]["format"] == "date-time"
        assert (amount["type"], amount["exclusiveMinimum"], amount["maximum"]) == (
            "number",
            0,
            10**15,
        )
        assert "EUR" in payload["properties"]["currency"]["enum"]
        assert payload["properties"]["paymentId"]["maxLength"] == 256
        assert schema.get("additionalProperties", True) is not False
        assert payload.get("additionalProperties", True) is not False


class TestSpecExamples:
    """The spec's four printed examples validate against the schemas, as they parse."""

    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    def test_example_validates_against_its_schema_and_the_envelope(self, event_type: str) -> None:
        """The example of each type matches its own schema and the envelope's, formats checked."""
        document = example(event_type)
        assert errors(event_schema(event_type), document) == []
        assert errors(event_schema("envelope"), document) == []
        assert parser_verdict(document, event_type) is None

    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    def test_example_does_not_validate_as_another_type(self, event_type: str) -> None:
        """An example fails every other type's schema (eventType is a const), as the parser refuses it on another topic."""
        others = [t for t in EVENT_TYPES if t != event_type]
        for other in others:
            assert errors(event_schema(other), example(event_type)) != []

    def test_format_checking_is_on(self) -> None:
        """February 30th matches the timestamp pattern but not format date-time: the format checker runs."""
        document = mutated("payment.completed", setter("timestamp", "2025-02-30T10:00:00Z"))
        assert errors(event_schema("payment.completed"), document)
        assert parser_verdict(document, "payment.completed") == "invalid_value"

    def test_unknown_fields_are_allowed_by_both(self) -> None:
        """A new envelope field and a new payload field are accepted by the schema and the parser (tolerant reader)."""
        document = mutated("payment.failed", setter("traceId", "abc"))
        setter("payload.retryable", True)(document)
        assert errors(event_schema("payment.failed"), document) == []
        assert parser_verdict(document, "payment.failed") is None


class TestBadEvents:
    """Events the consumers reject are rejected by the schema too, wherever JSON Schema can say so."""

    @pytest.mark.parametrize(
        ("event_type", "mutate", "reason"),
        [case[1:] for case in BAD_EVENTS],
        ids=[case[0] for case in BAD_EVENTS],
    )
    def test_rejected_by_parser_and_schema(
        self, event_type: str, mutate: Mutation, reason: RejectionReason
    ) -> None:
        """The parser gives the expected reason and the event's schema reports at least one error."""
        document = mutated(event_type, mutate)
        assert parser_verdict(document, event_type) == reason
        assert errors(event_schema(event_type), document) != []

    def test_unknown_event_type_fails_the_envelope(self) -> None:
        """The envelope schema alone refuses an eventType that is none of the four."""
        document = mutated("payment.completed", setter("eventType", "payment.disputed"))
        assert errors(event_schema("envelope"), document) != []


# What a JSON Schema cannot decide (docs/contracts.md lists them): each is accepted by the
# schema and rejected by the consumers.
BEYOND_THE_SCHEMA: Final[list[tuple[str, str, Mutation]]] = [
    ("EUR with 3 decimal places", "payment.completed", setter("payload.amount", Decimal("12.345"))),
    (
        "JPY with a decimal place",
        "payment.completed",
        both(setter("payload.currency", "JPY"), setter("payload.amount", Decimal("1250.5"))),
    ),
    (
        "later than the consumer's clock plus skew",
        "payment.failed",
        setter("payload.failedAt", "2999-01-01T00:00:00Z"),
    ),
    (
        "2000 in its zone, 1999 in UTC",
        "payment.initiated",
        setter("timestamp", "2000-01-01T00:30:00+01:00"),
    ),
]

# Where the consumers are more lenient than the contract: forms msgspec's RFC 3339 reader accepts.
LENIENT_CONSUMER: Final[list[tuple[str, str, Mutation]]] = [
    ("space for T", "payment.completed", setter("timestamp", "2025-12-18 10:32:15Z")),
    ("lower-case t and z", "payment.completed", setter("timestamp", "2025-12-18t10:32:15z")),
    ("offset without colon", "payment.completed", setter("timestamp", "2025-12-18T10:32:15+0100")),
]


class TestWhereSchemaAndParserDiffer:
    """The documented differences hold: if the schema learns one of them, the docs must change."""

    @pytest.mark.parametrize(
        ("event_type", "mutate"),
        [case[1:] for case in BEYOND_THE_SCHEMA],
        ids=[case[0] for case in BEYOND_THE_SCHEMA],
    )
    def test_schema_accepts_what_only_the_consumer_can_refuse(
        self, event_type: str, mutate: Mutation
    ) -> None:
        """The schema accepts the event and the parser rejects it as invalid_value."""
        document = mutated(event_type, mutate)
        assert errors(event_schema(event_type), document) == []
        assert parser_verdict(document, event_type) == "invalid_value"

    @pytest.mark.parametrize(
        ("event_type", "mutate"),
        [case[1:] for case in LENIENT_CONSUMER],
        ids=[case[0] for case in LENIENT_CONSUMER],
    )
    def test_schema_refuses_iso_forms_the_consumer_reads(
        self, event_type: str, mutate: Mutation
    ) -> None:
        """The schema asks for RFC 3339 as its pattern writes it; msgspec also reads these forms."""
        document = mutated(event_type, mutate)
        assert errors(event_schema(event_type), document) != []
        assert parser_verdict(document, event_type) is None

    def test_nan_is_not_json(self) -> None:
        """A NaN amount is not JSON: a strict JSON reader and the parser both refuse the document."""
        text = to_json(mutated("payment.completed", setter("payload.amount", Decimal("NaN"))))
        with pytest.raises(ValueError, match="NaN"):
            strict_json(text)
        with pytest.raises(InvalidEvent) as raised:
            parse_event(text.encode(), DEFAULT_TOPICS.for_event("payment.completed"))
        assert raised.value.reason == "not_json"


INEXPRESSIBLE: Final = ("decimal place", "is later than", "out of range in UTC", "before 2000")
"""Details of rejections the schema cannot make (docs/contracts.md): minor units, the clock."""


class TestSimulatedStream:
    """Over a simulated stream with every kind of poison record, schema and parser agree."""

    def test_schema_and_parser_agree_on_every_record(self) -> None:
        """A record the parser accepts matches its topic's schema; one it rejects does not, unless for a documented reason."""
        simulation = generate(SimulationConfig(flows=150, seed=11, poison=40))
        reasons: set[str | None] = set()
        for record in simulation.records:
            event_type = DEFAULT_TOPICS.event_type_of(record.topic)
            assert event_type is not None
            try:
                parse_event(record.value, record.topic)
            except InvalidEvent as exc:
                rejection: InvalidEvent | None = exc
            else:
                rejection = None
            reasons.add(rejection.reason if rejection else None)
            if rejection is not None and rejection.reason == "empty_value":
                assert not record.value
                continue
            try:
                document = strict_json(record.value or b"")
            except ValueError:
                assert rejection is not None
                assert rejection.reason == "not_json"
                continue
            found = errors(event_schema(event_type), document)
            if rejection is None:
                assert found == [], found
            elif not found:
                assert any(text in rejection.detail for text in INEXPRESSIBLE), rejection
        assert reasons == {None, *get_args(RejectionReason)}
