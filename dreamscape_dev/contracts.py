"""The event contract in `contracts/`, generated: JSON Schema from the models, AsyncAPI from the names.

One source of truth: the JSON Schemas come from the msgspec models the consumers validate
with (`common.events`), the AsyncAPI document from `common.topics`, `common.dlq` and those
schemas. `make contracts` (`python -m dreamscape_dev.contracts`) rewrites the files; the test
suite renders them in memory and fails when the checked-in copies differ, so a model change
cannot ship with a stale contract. Output is deterministic (pretty-printed, fixed key order)
so a regeneration without a model change is a no-op in git.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
import yaml
from msgspec import Meta

from common import events
from common.topics import EVENT_TYPES
from dreamscape_dev.asyncapi import asyncapi_document

SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
BASE_ID: Final = "https://schemas.dreamscape.com/payment/v1/"
"""Base of every schema's `$id`: an identifier, not a URL anything is served from."""

ENVELOPE_FILE: Final = "schemas/envelope.schema.json"
ASYNCAPI_FILE: Final = "asyncapi.yaml"

SUMMARIES: Final = {
    "payment.initiated": "Published when a payment is initiated by a user.",
    "payment.completed": "Published when a payment is successfully completed.",
    "payment.failed": "Published when a payment fails.",
    "payment.refunded": "Published when a payment is refunded (in full or in part).",
}
"""The spec's one-line description of each event type (its topic table)."""


def schema_file(event_type: str) -> str:
    """Where the JSON Schema of `event_type` lives under `contracts/`."""
    return f"schemas/{event_type}.schema.json"


# A private base on purpose: the envelope schema must be the models' own envelope fields,
# not a copy of them that could drift.
class Envelope(events._Envelope, frozen=True, kw_only=True):
    """The envelope every DreamScape payment event carries (the spec's `BaseEvent<T>`). Each event type's own schema also describes its payload."""

    event_type: Annotated[str, Meta(extra_json_schema={"enum": list(EVENT_TYPES)})]
    payload: dict[str, Any]


def _schema_hook(kind: type) -> dict[str, Any]:
    if kind is events.Amount:
        return dict(events.AMOUNT_SCHEMA)
    raise NotImplementedError(kind)


def _ecma(schema: Any) -> Any:
    r"""`schema` with each pattern in ECMA-262 form: Python's `\Z` (end of text) becomes `$`.

    The models' patterns end in `\Z` because Python's `$` also matches before a final
    newline (`events._python`); in JSON Schema's ECMA-262 dialect `$` is already the end.
    """
    if isinstance(schema, dict):
        return {
            key: value.removesuffix(r"\Z") + "$"
            if key == "pattern" and isinstance(value, str) and value.endswith(r"\Z")
            else _ecma(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_ecma(item) for item in schema]
    return schema


def _schema(model: type[msgspec.Struct], file: str, description: str | None) -> dict[str, Any]:
    """`model`'s JSON Schema, its nested structs under `$defs`, with `$schema` and `$id` first."""
    (reference,), components = msgspec.json.schema_components(
        [model], schema_hook=_schema_hook, ref_template="#/$defs/{name}"
    )
    components = _ecma(components)
    generated: dict[str, Any] = components.pop(reference["$ref"].rsplit("/", 1)[1])
    head: dict[str, Any] = {"$schema": SCHEMA_DIALECT, "$id": BASE_ID + file.rsplit("/", 1)[1]}
    if components:
        head["$defs"] = dict(sorted(components.items()))
    if description is not None:
        generated["description"] = description
    return head | generated


def json_schemas() -> dict[str, dict[str, Any]]:
    """Every JSON Schema of the contract, by its path under `contracts/`."""
    schemas = {ENVELOPE_FILE: _schema(Envelope, ENVELOPE_FILE, None)}
    for event_type, model in events.MODEL_BY_EVENT_TYPE.items():
        file = schema_file(event_type)
        topic = f"dreamscape.{event_type}"
        schemas[file] = _schema(model, file, f"{SUMMARIES[event_type]} Topic `{topic}`.")
    return schemas


def render() -> dict[str, str]:
    """The text of every file under `contracts/`, by path: exactly what `write` puts there."""
    schemas = json_schemas()
    files = {
        path: json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        for path, schema in schemas.items()
    }
    document = asyncapi_document({t: schema_file(t) for t in EVENT_TYPES}, SUMMARIES)
    files[ASYNCAPI_FILE] = yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return files


class _Dumper(yaml.SafeDumper):
    """Plain YAML: no `&id001` anchors for shared values, and decimals as the numbers they are."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.ScalarNode:
    """`1250.00` stays `1250.00` (a YAML float with the exact text), not `1250.0`."""
    return dumper.represent_scalar("tag:yaml.org,2002:float", str(value))


_Dumper.add_representer(Decimal, _decimal)


def stale(directory: Path) -> list[str]:
    """Paths under `directory` that differ from the render, are missing, or are left over.

    Left over: a schema file the render no longer has (an event type renamed, say); only
    files of the kinds the render writes are considered, so nothing else there is touched.
    """
    files = render()
    generated = [*directory.glob("schemas/*.schema.json"), directory / ASYNCAPI_FILE]
    on_disk = {str(p.relative_to(directory)) for p in generated if p.is_file()}
    differing = [
        path
        for path, text in files.items()
        if not (directory / path).is_file() or (directory / path).read_text("utf-8") != text
    ]
    return sorted(set(differing) | (on_disk - set(files)))


def write(directory: Path) -> list[str]:
    """Rewrite `directory` with the render (and remove files it no longer has); returns changes."""
    changed = stale(directory)
    files = render()
    for path in changed:
        target = directory / path
        if path in files:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(files[path], "utf-8")
        else:
            target.unlink()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dreamscape_dev.contracts", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("contracts"), help="default: contracts")
    parser.add_argument("--check", action="store_true", help="exit 1 if any file is stale")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale(args.dir)
        for path in out_of_date:
            print(f"stale: {args.dir / path} (run `make contracts`)", file=sys.stderr)
        return 1 if out_of_date else 0
    for path in write(args.dir):
        print(f"wrote {args.dir / path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
