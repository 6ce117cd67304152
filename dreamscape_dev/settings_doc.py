"""docs/settings.md, generated from the settings classes so that it cannot drift from them.

    python -m dreamscape_dev.settings_doc            # write docs/settings.md (`make docs`)
    python -m dreamscape_dev.settings_doc --check    # exit 1 if it differs from what this writes

Each field of `RunnerSettings` and of each service's settings class becomes a row: its
environment variable, its type and bounds, its default and its meaning, which is the field's
docstring (or pydantic `description`), else the entry of `settings_notes.MEANINGS`. A field
with neither stops the generator, and so does an entry no field needs. The variables read
outside pydantic (the `OTEL_*` of `common/tracing.py`...) are found in the source and must
be named by the hand-written sections of `settings_notes`. tests/unit/test_settings_doc.py
fails when the checked-in page differs from what this writes.
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import itertools
import re
import sys
import textwrap
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from analytics_consumer.settings import AnalyticsSettings
from analytics_consumer.tables import SCHEMA as ANALYTICS_SCHEMA
from common.schema import Schema
from common.settings import (
    CONSUMER_DEFAULTS,
    FILE_SUFFIX,
    PINNED_CONSUMER_PROPERTIES,
    RunnerSettings,
)
from common.topics import GROUP_ANALYTICS, GROUP_NOTIFICATION, GROUP_VOYAGE
from dreamscape_dev import settings_notes
from notification_consumer.settings import NotificationSettings
from notification_consumer.tables import SCHEMA as NOTIFICATION_SCHEMA
from voyage_consumer.settings import VoyageSettings
from voyage_consumer.tables import SCHEMA as VOYAGE_SCHEMA

ROOT: Final = Path(__file__).resolve().parents[1]
PAGE: Final = ROOT / "docs" / "settings.md"
COMMAND: Final = "make docs (python -m dreamscape_dev.settings_doc)"
SOURCES: Final = ("common", "voyage_consumer", "notification_consumer", "analytics_consumer")
"""Packages whose own reads of the environment must be documented."""
KAFKA_ROW: Final = "KAFKA_<PROPERTY>"


@dataclass(frozen=True, slots=True)
class Service:
    """A service's section: its settings class, its database and its default group."""

    name: str
    settings: type[RunnerSettings]
    schema: Schema
    group: str


SERVICES: Final = (
    Service("voyage-consumer", VoyageSettings, VOYAGE_SCHEMA, GROUP_VOYAGE),
    Service("notification-consumer", NotificationSettings, NOTIFICATION_SCHEMA, GROUP_NOTIFICATION),
    Service("analytics-consumer", AnalyticsSettings, ANALYTICS_SCHEMA, GROUP_ANALYTICS),
)


class SettingsDocError(Exception):
    """The settings cannot be documented as they are; the message says what to add or remove."""


@dataclass(frozen=True, slots=True)
class Row:
    variable: str
    type: str
    default: str
    meaning: str

    def markdown(self) -> str:
        meaning = self.meaning[:1].upper() + self.meaning[1:]
        cells = (f"`{self.variable}`", self.type, self.default, meaning)
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


# -- reading a field ----------------------------------------------------------------------


def env_name(cls: type[RunnerSettings], field: str) -> str:
    """The environment variable pydantic-settings reads for `field` of `cls`."""
    info = cls.model_fields[field]
    alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
    prefix = cls.model_config.get("env_prefix") or ""
    return (alias or f"{prefix}{field}").upper()


def own_fields(cls: type[RunnerSettings]) -> dict[str, FieldInfo]:
    """Fields `cls` adds to `RunnerSettings`, or redefines (another default, type...)."""
    base = RunnerSettings.model_fields
    return {
        name: info
        for name, info in cls.model_fields.items()
        if name not in base or repr(info) != repr(base[name])
    }


@functools.cache
def docstrings(cls: type) -> dict[str, str]:
    """The attribute docstrings of `cls` and its bases (a string right under a field)."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ == "builtins" or not issubclass(klass, RunnerSettings):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
        for field, after in itertools.pairwise(body):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                found[field.target.id] = " ".join(after.value.value.split())
    return found


def _number(value: object, *, grouped: bool = False) -> str:
    """`60.0` → `60`, `Decimal("5")` → `5`; `grouped`: `100000` → `100,000` (prose, not values)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return f"{value:,}" if grouped and isinstance(value, int) else str(value)


_BOUNDS: Final = (
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "≤"),
    (annotated_types.Lt, "lt", "<"),
)


def _bounds(info: FieldInfo) -> list[str]:
    return [
        f"{symbol} {_number(getattr(item, attribute), grouped=True)}"
        for item in info.metadata
        for kind, attribute, symbol in _BOUNDS
        if isinstance(item, kind)
    ]


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


_NAMES: Final[Mapping[type, str]] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    Decimal: "decimal",
    str: "text",
    Path: "path",
}


def type_name(annotation: Any) -> str:
    """How a field's type reads in the table: `integer`, `one of ...`, `secret`..."""
    annotation = _without_none(annotation)
    origin = get_origin(annotation)
    if origin is Annotated:
        return type_name(get_args(annotation)[0])
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in get_args(annotation))
    if origin is dict:
        return f"list of `name={type_name(get_args(annotation)[1])}`, comma-separated"
    if origin in (frozenset, set, list, tuple):
        return "names, comma-separated"
    if isinstance(annotation, type):
        if issubclass(annotation, SecretStr):
            return "URL (secret)" if annotation is not SecretStr else "text (secret)"
        for kind, name in _NAMES.items():
            if issubclass(annotation, kind):
                return name
    raise SettingsDocError(f"no name for the type {annotation!r}: add it to settings_doc")


def type_text(info: FieldInfo) -> str:
    """The type and its bounds (`integer, ≥ 1, ≤ 100,000`)."""
    return ", ".join([type_name(info.annotation), *_bounds(info)])


def value_text(value: object) -> str:
    """A default as the environment would spell it."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Mapping):
        return f"`{','.join(f'{k}={_number(v)}' for k, v in value.items())}`" if value else "empty"
    if isinstance(value, (frozenset, set, list, tuple)):
        return f"`{','.join(sorted(map(str, value)))}`" if value else "empty"
    if isinstance(value, (int, float, Decimal)):
        return f"`{_number(value)}`"
    return f"`{value}`" if str(value) else "empty"


def default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        return value_text(info.default_factory())  # type: ignore[call-arg]
    return value_text(info.default)


# -- the page -----------------------------------------------------------------------------


class Meanings:
    """Each field's meaning: its docstring or description, else `settings_notes.MEANINGS`."""

    def __init__(self, notes: Mapping[str, str]) -> None:
        self._notes = notes
        self.used: set[str] = set()
        self.missing: list[str] = []

    def of(self, cls: type[RunnerSettings], field: str) -> str:
        variable = env_name(cls, field)
        written = cls.model_fields[field].description or docstrings(cls).get(field)
        if written:
            return written
        if variable in self._notes:
            self.used.add(variable)
            return self._notes[variable]
        self.missing.append(f"{variable} ({cls.__module__}.{cls.__qualname__}.{field})")
        return ""


def runtime_rows(meanings: Meanings) -> list[Row]:
    rows = [
        Row(env_name(RunnerSettings, name), type_text(info), default_text(info),
            meanings.of(RunnerSettings, name))
        for name, info in RunnerSettings.model_fields.items()
        if name != "kafka"
    ]  # fmt: skip
    return [
        *rows,
        Row(KAFKA_ROW, "librdkafka property", "[below](#kafka-properties)",
            "any librdkafka property, e.g. `KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_GROUP_ID`, "
            "`KAFKA_SECURITY_PROTOCOL`, `KAFKA_SESSION_TIMEOUT_MS`."),
    ]  # fmt: skip


def service_rows(service: Service, meanings: Meanings) -> list[Row]:
    cls = service.settings
    database = cls.model_fields["database_url"]
    rows = [
        Row("DATABASE_URL", type_text(database), f"`{service.schema.default_url}`",
            "the service's database; unset, this SQLite file."),
        Row("KAFKA_GROUP_ID", "text", f"`{service.group}`",
            f"the consumer group; its DLQ is `dreamscape.dlq.{service.group}`."),
    ]  # fmt: skip
    rows += [
        Row(env_name(cls, name), type_text(info), default_text(info), meanings.of(cls, name))
        for name, info in own_fields(cls).items()
    ]
    return rows


def _is_secret(annotation: Any) -> bool:
    if isinstance(annotation, type):
        return issubclass(annotation, SecretStr)
    return any(_is_secret(arg) for arg in get_args(annotation))


def secret_files() -> list[str]:
    """`- VARIABLE_FILE: who reads it` for every secret field."""
    readers: dict[str, list[str]] = {}
    for name, info in RunnerSettings.model_fields.items():
        if _is_secret(info.annotation):
            readers.setdefault(env_name(RunnerSettings, name), []).append("every service")
    for service in SERVICES:
        for name, info in own_fields(service.settings).items():
            if _is_secret(info.annotation):
                readers.setdefault(env_name(service.settings, name), []).append(service.name)
    return [f"- `{var}{FILE_SUFFIX}`: {', '.join(who)}" for var, who in readers.items()]


def _table(rows: list[Row]) -> list[str]:
    return [
        "| variable | type | default | meaning |",
        "|---|---|---|---|",
        *(row.markdown() for row in rows),
    ]


def render() -> str:
    """The whole of docs/settings.md; SettingsDocError when a meaning is missing or unused."""
    meanings = Meanings(settings_notes.MEANINGS)
    lines = [
        "# Settings",
        "",
        "<!-- Generated by `python -m dreamscape_dev.settings_doc` (`make docs`) from the "
        "settings classes and dreamscape_dev/settings_notes.py: do not edit by hand. -->",
        "",
        "Every setting is an environment variable, read once at start-up and validated: an "
        "invalid value prints one line naming the variable and the process exits with code 2 "
        "(a crash loop with exit code 2 after a deployment is a configuration mistake, not a "
        "bug). A field's meaning is the docstring under it in its settings class.",
        "",
        "## Every service",
        "",
        "Read by `common.settings.RunnerSettings`, which every service's settings extend:",
        "",
        *_table(runtime_rows(meanings)),
    ]
    for service in SERVICES:
        cls = service.settings
        lines += [
            "",
            f"## {service.name}",
            "",
            f"Read by `{cls.__module__}.{cls.__qualname__}`: the settings of every service, and"
            " these (a variable in both tables: this row wins).",
            "",
            *_table(service_rows(service, meanings)),
        ]
    lines += ["", "## Kafka properties", "", settings_notes.KAFKA.rstrip()]
    lines += ["", "Defaults the runtime sets, each overridable, and the properties it pins:", ""]
    lines += kafka_defaults()
    lines += ["", "## Secrets from files", ""]
    lines += [
        "A secret setting can instead be read from the file its `<VARIABLE>_FILE` names "
        "(the Docker and Kubernetes secrets convention):",
        "",
        *secret_files(),
        "",
        settings_notes.FROM_FILES.rstrip(),
    ]
    lines += ["", "## Tracing (`OTEL_*`)", "", settings_notes.TRACING.rstrip()]
    lines += ["", "## The tools and the tests", "", settings_notes.TOOLING.rstrip(), ""]
    page = "\n".join(lines)
    problems = [
        f"no meaning for {variable}: add a docstring under the field"
        for variable in meanings.missing
    ]
    problems += [
        f"settings_notes.MEANINGS[{variable!r}] is not needed: its field has a docstring or is gone"
        for variable in sorted(set(settings_notes.MEANINGS) - meanings.used)
    ]
    problems += [
        f"{variable} is read by {where} but docs/settings.md does not name it: "
        "add it to dreamscape_dev/settings_notes.py"
        for variable, where in sorted(read_outside_settings().items())
        if f"`{variable}`" not in page
    ]
    if problems:
        raise SettingsDocError("; ".join(problems))
    return page


def kafka_defaults() -> list[str]:
    return [
        *(f"- `{name}={value}`" for name, value in CONSUMER_DEFAULTS.items()),
        *(f"- `{name}={value}`, always: setting it is a configuration error"
          for name, value in PINNED_CONSUMER_PROPERTIES.items()),
        "- the DLQ producer: `acks=all` and `enable.idempotence=true`, always",
    ]  # fmt: skip


# -- reads of the environment outside pydantic ---------------------------------------------

_VARIABLE: Final = re.compile(r"[A-Z][A-Z0-9_]+")


def _reads(tree: ast.AST) -> Iterator[str]:
    """Constant names passed to `environ.get(...)`, `getenv(...)` or `environ[...]`."""
    for node in ast.walk(tree):
        argument: ast.expr | None = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value if isinstance(func, ast.Attribute) else None
            owner_name = getattr(owner, "attr", None) or getattr(owner, "id", "")
            if name == "getenv" or (name == "get" and "environ" in str(owner_name)):
                argument = node.args[0]
        elif isinstance(node, ast.Subscript) and "environ" in ast.unparse(node.value):
            argument = node.slice
        if (
            isinstance(argument, ast.Constant)
            and isinstance(argument.value, str)
            and _VARIABLE.fullmatch(argument.value)
        ):
            yield argument.value


def read_outside_settings() -> dict[str, str]:
    """Each variable the runtime and the services read themselves, and the first file that does."""
    found: dict[str, str] = {}
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for variable in _reads(ast.parse(path.read_text(encoding="utf-8"))):
                found.setdefault(variable, str(path.relative_to(ROOT)))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/settings.md is stale")
    args = parser.parse_args(argv)
    try:
        page = render()
    except SettingsDocError as exc:
        print(f"settings_doc: {exc}", file=sys.stderr)
        return 1
    current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    if args.check:
        if current != page:
            print(f"docs/settings.md is stale: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    if current != page:
        PAGE.write_text(page, encoding="utf-8")
    print(f"docs/settings.md {'written' if current != page else 'up to date'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
