"""docs/settings.md is what `dreamscape_dev.settings_doc` writes from the settings classes, so it cannot drift.

The page is generated (`make docs`); these tests fail when it was edited by hand or a
settings class changed without regenerating it, and check that the generator leaves out no
settings class, no field and no variable the code reads outside pydantic.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import pytest
from pydantic import Field, SecretStr

from common.settings import DatabaseURL, RunnerSettings
from dreamscape_dev import settings_doc, settings_notes, settings_reading
from tests.deploy.service_settings import SERVICE_PACKAGES, settings_classes


class TestThePage:
    def test_the_checked_in_page_is_what_the_generator_writes(self) -> None:
        """docs/settings.md is byte for byte the generator's output."""
        assert settings_doc.PAGE.read_text(encoding="utf-8") == settings_doc.render(), (
            f"docs/settings.md is stale or edited by hand: run {settings_doc.COMMAND}"
        )

    @pytest.mark.parametrize("package", SERVICE_PACKAGES)
    def test_every_settings_class_of_a_service_has_its_section(self, package: str) -> None:
        """Each `RunnerSettings` subclass a service defines is one the generator documents."""
        documented = {service.settings for service in settings_doc.SERVICES}
        assert set(settings_classes(package)) <= documented

    def test_every_field_has_a_row_in_its_section(self) -> None:
        """Each field of the runtime, and each field a service adds, is a row of the page."""
        page = settings_doc.render()
        sections = page.split("\n## ")
        for service in settings_doc.SERVICES:
            cls = service.settings
            section = next(s for s in sections if f"`{cls.__module__}.{cls.__qualname__}`" in s)
            for name in settings_reading.own_fields(cls):
                assert f"| `{settings_reading.env_name(cls, name)}` |" in section, name
        runtime = next(s for s in sections if s.startswith("Every service"))
        for name in RunnerSettings.model_fields:
            variable = settings_reading.env_name(RunnerSettings, name)
            assert f"| `{variable}` |" in runtime or name == "kafka", name

    def test_the_variables_read_outside_pydantic_are_found(self) -> None:
        """The scan of the source finds what common/tracing.py reads itself."""
        found = settings_reading.read_outside_settings(settings_doc.ROOT, settings_doc.SOURCES)
        assert {"OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_SDK_DISABLED"} <= set(found)
        assert found["OTEL_SERVICE_NAME"] == "common/tracing.py"


class TestMeanings:
    def test_a_field_without_a_meaning_stops_the_generator(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A field with no docstring and no hand-written meaning is named in the error."""
        notes = dict(settings_notes.MEANINGS)
        del notes["SMTP_HOST"]
        monkeypatch.setattr(settings_notes, "MEANINGS", notes)
        with pytest.raises(settings_reading.SettingsDocError, match="no meaning for SMTP_HOST"):
            settings_doc.render()

    def test_a_meaning_no_field_needs_stops_the_generator(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A hand-written meaning for a variable that is gone, or documented in code, is refused."""
        notes = {**settings_notes.MEANINGS, "NO_SUCH_SETTING": "whatever"}
        monkeypatch.setattr(settings_notes, "MEANINGS", notes)
        with pytest.raises(settings_reading.SettingsDocError, match="NO_SUCH_SETTING"):
            settings_doc.render()

    def test_a_docstring_wins_over_a_note(self) -> None:
        """The docstring under a field is its meaning."""

        class Example(RunnerSettings):
            example_limit: int = 3
            """How many."""

        assert settings_doc.Meanings({"EXAMPLE_LIMIT": "note"}).of(Example, "example_limit") == (
            "How many."
        )


class TestRendering:
    @pytest.mark.parametrize(
        ("annotation", "text"),
        [
            (bool, "boolean"),
            (float, "number"),
            (Decimal, "decimal"),
            (str | None, "text"),
            (Literal["json", "console"] | None, "one of `json`, `console`"),
            (SecretStr | None, "text (secret)"),
            (DatabaseURL | None, "URL (secret)"),
            (dict[str, int], "list of `name=integer`, comma-separated"),
            (frozenset[str], "names, comma-separated"),
        ],
    )
    def test_type_names(self, annotation: object, text: str) -> None:
        """Each kind of field type reads as a word, not as Python."""
        assert settings_reading.type_name(annotation) == text

    def test_bounds_follow_the_type(self) -> None:
        """`Field(ge=..., le=...)` bounds are shown after the type."""

        class Example(RunnerSettings):
            example_size: Annotated[int, Field(ge=1, le=100_000)] = 1000

        info = Example.model_fields["example_size"]
        assert settings_reading.type_text(info) == "integer, ≥ 1, ≤ 100,000"
        assert settings_reading.default_text(info) == "`1000`"

    @pytest.mark.parametrize(
        ("value", "text"),
        [
            (None, "unset"),
            ("", "empty"),
            (False, "`false`"),
            (60.0, "`60`"),
            (0.5, "`0.5`"),
            (Decimal(10), "`10`"),
            ({"credit_card": 900}, "`credit_card=900`"),
            (frozenset({"b", "a"}), "`a,b`"),
            ({}, "empty"),
        ],
    )
    def test_defaults_as_the_environment_spells_them(self, value: object, text: str) -> None:
        """A default reads as the value one would set."""
        assert settings_reading.value_text(value) == text
