"""The project as a team installs it: the built wheel, in a clean venv, outside this checkout.

The suite itself runs on an editable install, which reads data files from the checkout and
so cannot notice one the wheel leaves out. Here each part that reads a data file at run time
does so from the installed wheel: the spec's example events (the test builders and the
generated consumers' tests use them), the email templates, the consumer template, the
Apache Kafka POM and its log configuration.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Final

import pytest

from tests.deploy.deployment import ROOT

pytestmark = pytest.mark.integration

PROBE: Final = """
import importlib.resources as resources
import pathlib
import sys
import tempfile
import types

import dreamscape_dev.new
from dreamscape_dev.testing import apache_kafka, builders
from notification_consumer.preview import preview

assert "site-packages" in builders.__file__, builders.__file__
for event_type in ("payment.initiated", "payment.completed", "payment.failed", "payment.refunded"):
    assert builders.spec_example(event_type)["eventType"] == event_type
assert (dreamscape_dev.new.TEMPLATE / "copier.yml").is_file(), dreamscape_dev.new.TEMPLATE
assert apache_kafka.POM.is_file() and apache_kafka.LOG4J2.is_file()
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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from this checkout as `pip wheel` builds it."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def clean_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the wheel, its dependencies and `[template]` (copier), nothing of this checkout."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"{wheel}[template]",
        ],
        check=True,
        timeout=600,
    )
    return python


class TestWheel:
    def test_the_wheel_carries_the_spec_examples(self, wheel: Path) -> None:
        """The four printed spec examples are in the wheel, under dreamscape_dev/testing."""
        names = set(zipfile.ZipFile(wheel).namelist())
        for event in ("initiated", "completed", "failed", "refunded"):
            assert f"dreamscape_dev/testing/spec_examples/payment_{event}.json" in names

    def test_every_data_file_is_read_from_the_installed_wheel(
        self, clean_venv: Path, tmp_path: Path
    ) -> None:
        """In a clean venv, outside the checkout, the builders, the emails and the templates find their files."""
        done = subprocess.run(
            [str(clean_venv), "-c", PROBE],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "probe ok" in done.stdout
