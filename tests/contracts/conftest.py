"""Shared by the contract tests: the checked-in contract, loaded, and the official AsyncAPI schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from dreamscape_dev.testing.asyncapi_specs import SpecsUnavailableError, asyncapi_3_schema
from tests.deploy.deployment import missing_tool

ROOT: Final = Path(__file__).resolve().parents[2]
CONTRACTS: Final = ROOT / "contracts"


@pytest.fixture(scope="session")
def asyncapi_schema() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 JSON Schema of the pinned `@asyncapi/specs` (skip, or fail under REQUIRE_TOOLS=1)."""
    try:
        path = asyncapi_3_schema()
    except SpecsUnavailableError as exc:
        missing_tool(f"the official AsyncAPI schema cannot be had: {exc}")
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


@pytest.fixture(scope="session")
def asyncapi_document() -> dict[str, Any]:
    """contracts/asyncapi.yaml as checked in."""
    document: dict[str, Any] = yaml.safe_load((CONTRACTS / "asyncapi.yaml").read_text())
    return document
