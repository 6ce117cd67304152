"""Finding the settings classes of the services, and the environment variable of each field.

The services are written in parallel with these tests, so nothing here names their modules:
each package's `settings` modules (or, in a package without one, its `service` modules) are
imported and searched for `RunnerSettings` subclasses. A package that does not exist yet has
none; a module that exists but fails to import is an error worth seeing, so it propagates.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Final

from pydantic.fields import FieldInfo

from common.settings import RunnerSettings

SERVICE_PACKAGES: Final = ("voyage_consumer", "notification_consumer", "analytics_consumer")
SEARCHED_MODULES: Final = ("settings", "service")
"""Module names searched, in order; the first name found in a package is the one imported.

Only these are imported: importing every module of every service into one process would
also import their table definitions, which is the services' own tests' business.
"""


def settings_classes(package: str) -> list[type[RunnerSettings]]:
    """`RunnerSettings` subclasses defined in `package` (empty if the package does not exist)."""
    try:
        root = importlib.import_module(package)
    except ModuleNotFoundError as exc:
        if exc.name == package:
            return []
        raise
    modules = [m.name for m in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")]
    chosen: list[str] = []
    for wanted in SEARCHED_MODULES:
        chosen = [name for name in modules if name.rsplit(".", 1)[-1] == wanted]
        if chosen:
            for name in chosen:
                importlib.import_module(name)
            break
    # Only the searched modules' classes: another module (a CLI's own settings, say) may
    # subclass them, and whether it was imported depends on which tests ran before.
    found = {cls for cls in _subclasses(RunnerSettings) if cls.__module__ in chosen}
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def _subclasses(cls: type[RunnerSettings]) -> Iterator[type[RunnerSettings]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def env_name(cls: type[RunnerSettings], field: str) -> str:
    """The environment variable pydantic-settings reads for `field` of `cls`."""
    info = cls.model_fields[field]
    alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
    prefix = cls.model_config.get("env_prefix") or ""
    return (alias or f"{prefix}{field}").upper()


def own_fields(cls: type[RunnerSettings]) -> dict[str, FieldInfo]:
    """Fields `cls` adds to `RunnerSettings`, or redefines (a different default, type...)."""
    base = RunnerSettings.model_fields
    return {
        name: info
        for name, info in cls.model_fields.items()
        if name not in base or repr(info) != repr(base[name])
    }
