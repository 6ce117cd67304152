"""What the code says about a setting: its variable, type, bounds, default and docstring.

`settings_doc` builds docs/settings.md from these. They read the pydantic fields of a
`RunnerSettings` subclass, the attribute docstrings of its source, and, for variables read
outside pydantic, the `environ.get(...)`, `getenv(...)` and `environ[...]` calls of the
source files.
"""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import re
import textwrap
import types
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from common.settings import RunnerSettings


class SettingsDocError(Exception):
    """The settings cannot be documented as they are; the message says what to add or remove."""


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
    raise SettingsDocError(
        f"no name for the type {annotation!r}: add it to settings_reading._NAMES"
    )


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


def is_secret(annotation: Any) -> bool:
    if isinstance(annotation, type):
        return issubclass(annotation, SecretStr)
    return any(is_secret(arg) for arg in get_args(annotation))


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


def read_outside_settings(root: Path, packages: Sequence[str]) -> dict[str, str]:
    """Each variable the runtime and the services read themselves, and the first file that does."""
    found: dict[str, str] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            for variable in _reads(ast.parse(path.read_text(encoding="utf-8"))):
                found.setdefault(variable, str(path.relative_to(root)))
    return found
