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

from common.settings import RunnerSettings
from dreamscape_dev.settings_reading import env_name, own_fields

__all__ = ["env_name", "own_fields", "settings_classes"]

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
