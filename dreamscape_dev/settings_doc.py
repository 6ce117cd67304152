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
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

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
from dreamscape_dev.settings_reading import (
    SettingsDocError,
    default_text,
    docstrings,
    env_name,
    is_secret,
    own_fields,
    read_outside_settings,
    type_text,
)
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


def secret_files() -> list[str]:
    """`- VARIABLE_FILE: who reads it` for every secret field."""
    readers: dict[str, list[str]] = {}
    for name, info in RunnerSettings.model_fields.items():
        if is_secret(info.annotation):
            readers.setdefault(env_name(RunnerSettings, name), []).append("every service")
    for service in SERVICES:
        for name, info in own_fields(service.settings).items():
            if is_secret(info.annotation):
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
    lines += [*kafka_defaults(), "", settings_notes.KAFKA_DEFAULTS.rstrip()]
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
        for variable, where in sorted(read_outside_settings(ROOT, SOURCES).items())
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
