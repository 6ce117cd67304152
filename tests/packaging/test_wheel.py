"""The distributions as a team installs them: built wheels, in a clean venv, outside this checkout.

The suite itself runs on an editable install of the development project, which reads data
files from the checkout and so cannot notice one a wheel leaves out. Here the five wheels
`make dist` builds (distributions/*/) are read as archives, then used as installed in a new
venv (the session's `team` venv, from the local index: tests/packaging/conftest.py) from a
directory that cannot see this checkout (`PYTHONSAFEPATH`, another cwd): the spec's example
events, the consumer template, the Apache Kafka POM, the email templates, every service's
migrations and `py.typed`.
"""

from __future__ import annotations

import email.message
import email.parser
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Final

import pytest

from common import __version__
from tests.deploy.deployment import ROOT
from tests.packaging.conftest import NAMES, Built, Team, clean_env

pytestmark = pytest.mark.integration

PACKAGES: Final = {
    "dreamscape-runtime": "common",
    "dreamscape-dev": "dreamscape_dev",
    "dreamscape-voyage": "voyage_consumer",
    "dreamscape-notification": "notification_consumer",
    "dreamscape-analytics": "analytics_consumer",
}
DATA: Final = {
    "dreamscape-runtime": ("common/py.typed",),
    "dreamscape-dev": (
        "dreamscape_dev/py.typed",
        "dreamscape_dev/testing/spec_examples/payment_refunded.json",
        "dreamscape_dev/testing/kafka-libs.xml",
        "dreamscape_dev/templates/consumer/copier.yml",
        "dreamscape_dev/templates/consumer/project/.gitignore.jinja",
        "dreamscape_dev/templates/consumer/project/{{package}}/py.typed",
    ),
    "dreamscape-voyage": ("voyage_consumer/migrations/r0001_baseline.py",),
    "dreamscape-notification": (
        "notification_consumer/templates/receipt.html",
        "notification_consumer/templates/fr/receipt.html",
    ),
    "dreamscape-analytics": ("analytics_consumer/migrations/__init__.py",),
}
"""A few files per wheel that are not found by importing it."""

PROBE: Final = """
import importlib.resources as resources
import pathlib
import sys
import tempfile
import types

import common
import dreamscape_dev.new
from dreamscape_dev.testing import apache_kafka, builders
from notification_consumer.preview import preview

assert "site-packages" in common.__file__ and "site-packages" in builders.__file__
assert sys.argv[1] not in sys.path and "" not in sys.path, sys.path
for package in ("common", "dreamscape_dev"):
    assert resources.files(package).joinpath("py.typed").is_file(), package
for event_type in ("payment.initiated", "payment.completed", "payment.failed", "payment.refunded"):
    assert builders.spec_example(event_type)["eventType"] == event_type
assert (dreamscape_dev.new.TEMPLATE / "copier.yml").is_file(), dreamscape_dev.new.TEMPLATE
assert (dreamscape_dev.new.TEMPLATE / "project" / ".gitignore.jinja").is_file()
assert apache_kafka.POM.is_file() and apache_kafka.LOG4J2.is_file()
for service in ("voyage_consumer", "notification_consumer", "analytics_consumer"):
    revisions = [p.name for p in resources.files(service).joinpath("migrations").iterdir()]
    assert any(name.startswith("r0001") for name in revisions), (service, revisions)
with tempfile.TemporaryDirectory() as out:
    for event_type in ("payment.completed", "payment.failed", "payment.refunded"):
        for locale in ("en", "fr"):
            args = types.SimpleNamespace(
                event=builders.spec_path(event_type), out=pathlib.Path(out), locale=locale,
                display_name=None, payment_method="credit_card",
            )
            assert preview(args) == 0, (event_type, locale)
print("probe ok")
"""


def metadata(wheel: Path) -> email.message.Message:
    """The wheel's METADATA (core metadata) as headers."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


class TestTheArtifacts:
    """What `make dist` writes, read as archives."""

    def test_every_distribution_has_a_wheel_and_an_sdist_of_the_one_version(
        self, built: Built
    ) -> None:
        """Five wheels and five sdists, all at common.__version__, nothing else in dist/."""
        expected = {built.wheel(n).name for n in NAMES} | {built.sdist(n).name for n in NAMES}
        assert {path.name for path in built.directory.iterdir()} == expected
        for name in NAMES:
            assert metadata(built.wheel(name))["Version"] == __version__, name

    @pytest.mark.parametrize("name", NAMES)
    def test_each_wheel_holds_its_package_and_its_data(self, built: Built, name: str) -> None:
        """Only its own package (no bytecode), with the data files it reads at run time."""
        names = zipfile.ZipFile(built.wheel(name)).namelist()
        tops = {n.split("/")[0] for n in names if ".dist-info/" not in n}
        assert tops == {PACKAGES[name]}
        assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
        assert set(DATA[name]) <= set(names)

    def test_every_other_distribution_pins_the_runtime_to_its_own_version(
        self, built: Built
    ) -> None:
        """`dreamscape-runtime==<version>` in each; the runtime itself requires no DreamScape one."""
        for name in NAMES:
            requires = metadata(built.wheel(name)).get_all("Requires-Dist") or []
            ours = [r for r in requires if r.startswith("dreamscape-")]
            assert ours == (
                [] if name == "dreamscape-runtime" else [f"dreamscape-runtime=={__version__}"]
            )

    def test_the_sdists_are_self_contained(self, built: Built) -> None:
        """Each sdist holds its package and PKG-INFO (its wheel was built from it, not from here)."""
        for name in NAMES:
            with tarfile.open(built.sdist(name)) as archive:
                members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
            assert {"PKG-INFO", "pyproject.toml", "hatch_build.py"} <= members, name
            assert f"{PACKAGES[name]}/__init__.py" in members, name

    def test_the_build_hooks_are_one_file(self) -> None:
        """distributions/*/hatch_build.py are identical copies (each sdist must carry its own)."""
        hooks = {p.read_bytes() for p in (ROOT / "distributions").glob("*/hatch_build.py")}
        assert len(hooks) == 1
        assert {p.parent.name for p in (ROOT / "distributions").glob("*/pyproject.toml")} == set(
            NAMES
        )


class TestInACleanVenv:
    """The installed wheels, used from a directory that cannot see this checkout."""

    def test_every_data_file_is_read_from_the_installed_wheels(
        self, team: Team, tmp_path: Path
    ) -> None:
        """The builders, the consumer template, the emails and the migrations find their files."""
        done = subprocess.run(
            [str(team.bin / "python"), "-c", PROBE, str(ROOT)],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "probe ok" in done.stdout

    def test_the_console_scripts_run(self, team: Team, tmp_path: Path) -> None:
        """`dreamscape` (with the tooling's `new`) and the three services' scripts answer --help."""
        scripts = team.bin
        for script in ("voyage-consumer", "notification-consumer", "analytics-consumer"):
            done = subprocess.run(
                [str(scripts / script), "--help"],
                cwd=tmp_path,
                env=clean_env(),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, (script, done.stderr[-2000:])
        done = subprocess.run(
            [str(scripts / "dreamscape"), "new", "--help"],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "--vcs-ref" in done.stdout
