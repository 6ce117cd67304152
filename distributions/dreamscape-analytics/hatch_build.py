"""Lockstep builds: one version for every DreamScape distribution, its packages from the checkout.

The same file, byte for byte, is in each distributions/<name>/: hatchling loads a hook from
the project's own directory, and an sdist must carry it (tests/packaging/test_wheel.py checks
the copies are identical). Two hooks, configured in that distribution's pyproject.toml:

- metadata: the version is `__version__` of common/__init__.py, and `{version}` in the hook's
  `dependencies` becomes it (`dreamscape-runtime=={version}`). In an unpacked sdist hatchling
  takes both from PKG-INFO instead and this hook does not run.
- build: each package named in `packages` (e.g. `common`) is taken from the repository root,
  two levels up, into the sdist and the wheel, without moving the source tree. In an unpacked
  sdist the package is already in the project directory and the wheel target finds it there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.metadata.plugin.interface import MetadataHookInterface

CHECKOUT = Path("..", "..")
VERSION_FILE = CHECKOUT / "common" / "__init__.py"
VERSION = re.compile(r'^__version__ = "([^"]+)"$', re.MULTILINE)


class LockstepMetadataHook(MetadataHookInterface):
    """`version` from common/__init__.py, `dependencies` with `{version}` filled in."""

    def update(self, metadata: dict[str, Any]) -> None:
        found = VERSION.search((Path(self.root) / VERSION_FILE).read_text(encoding="utf-8"))
        if found is None:
            raise ValueError(f'no __version__ = "..." line in {VERSION_FILE}')
        version = found.group(1)
        metadata["version"] = version
        requirements = self.config.get("dependencies", [])
        metadata["dependencies"] = [r.replace("{version}", version) for r in requirements]


class CheckoutPackagesBuildHook(BuildHookInterface):
    """Force-include the configured packages from the checkout, when building from it."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        for package in self.config.get("packages", []):
            source = (Path(self.root) / CHECKOUT / package).resolve()
            if source.is_dir():
                build_data["force_include"][str(source)] = package
