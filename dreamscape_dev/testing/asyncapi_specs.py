"""The official AsyncAPI 3.0.0 JSON Schema, from the `@asyncapi/specs` npm package, cached.

The contract test validates `contracts/asyncapi.yaml` against the schema the AsyncAPI
initiative publishes, not a copy kept here that could age: `npm pack` fetches the pinned
package once (checked against its pinned integrity, so a re-published tarball is refused),
and its `schemas/3.0.0.json` is kept in `$DREAMSCAPE_CACHE` (default `~/.cache/dreamscape`)
beside the Kafka jars. Bumping the pin is one edit here; the next run fetches it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Final

from dreamscape_dev.testing.apache_kafka import cache_dir

SPECS_PACKAGE: Final = "@asyncapi/specs"
SPECS_VERSION: Final = "6.11.1"
SPECS_INTEGRITY: Final = "sha512-A3WBLqAKGoJ2+6FWFtpjBlCQ1oFCcs4GxF7zsIGvNqp/klGUHjlA3aAcZ9XMMpLGE8zPeYDz2x9FmO6DSuKraQ=="
"""The registry's `dist.integrity` of that version (`npm view @asyncapi/specs@V dist.integrity`)."""

SCHEMA_MEMBER: Final = "package/schemas/3.0.0.json"


class SpecsUnavailableError(Exception):
    """The package could not be had (no npm, no registry): the caller decides to skip or fail."""


def asyncapi_3_schema() -> Path:
    """The path of the official AsyncAPI 3.0.0 JSON Schema, fetched on first use."""
    target = cache_dir() / f"asyncapi-specs-{SPECS_VERSION}" / "3.0.0.json"
    if target.is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise SpecsUnavailableError("npm is not installed (it fetches @asyncapi/specs)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        tarball = _pack(npm, Path(scratch))
        _check_integrity(tarball)
        with tarfile.open(tarball) as archive:
            member = archive.extractfile(SCHEMA_MEMBER)
            if member is None:
                raise SpecsUnavailableError(f"{tarball.name} has no {SCHEMA_MEMBER}")
            staged = Path(scratch) / "3.0.0.json"
            staged.write_bytes(member.read())
        os.replace(staged, target)  # atomic: a half-written schema is never seen
    return target


def _pack(npm: str, directory: Path) -> Path:
    spec = f"{SPECS_PACKAGE}@{SPECS_VERSION}"
    try:
        done = subprocess.run(
            [
                npm,
                "pack",
                spec,
                "--pack-destination",
                str(directory),
                "--loglevel=error",
                "--fetch-retries=1",
            ],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SpecsUnavailableError(f"npm pack {spec} timed out") from None
    tarballs = list(directory.glob("*.tgz"))
    if done.returncode != 0 or len(tarballs) != 1:
        said = [line for line in done.stderr.splitlines() if line.strip() and "log" not in line]
        raise SpecsUnavailableError(f"npm pack {spec} failed: {(said or ['no output'])[0]}")
    return tarballs[0]


def _check_integrity(tarball: Path) -> None:
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if f"sha512-{digest}" != SPECS_INTEGRITY:
        # Not "unavailable": a different tarball under a pinned version must fail loudly.
        raise RuntimeError(f"{tarball.name} does not match the pinned integrity {SPECS_INTEGRITY}")
