"""A TLS file setting pointing nowhere: exit 2 with one line naming the variable and the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.settings import ConfigurationError, RunnerSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]


class TestTlsFileSettings:
    def test_a_missing_ca_file_is_a_configuration_error_naming_the_variable_and_path(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """KAFKA_SSL_CA_LOCATION naming no file fails to load, naming the variable and that path."""
        missing = tmp_path / "nowhere" / "ca.pem"
        monkeypatch.setenv("KAFKA_SSL_CA_LOCATION", str(missing))
        with pytest.raises(ConfigurationError) as raised:
            load_settings(RunnerSettings)
        assert "KAFKA_SSL_CA_LOCATION" in str(raised.value)
        assert str(missing) in str(raised.value)

    def test_an_existing_ca_file_and_the_probe_value_are_accepted(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """A CA file that exists loads, and so does librdkafka's special value `probe`."""
        ca = tmp_path / "ca.pem"
        ca.write_text("-----BEGIN CERTIFICATE-----\n")
        monkeypatch.setenv("KAFKA_SSL_CA_LOCATION", str(ca))
        monkeypatch.setenv("KAFKA_SSL_CERTIFICATE_LOCATION", str(ca))
        assert load_settings(RunnerSettings).kafka["ssl.ca.location"] == str(ca)
        monkeypatch.setenv("KAFKA_SSL_CA_LOCATION", "probe")
        assert load_settings(RunnerSettings).kafka["ssl.ca.location"] == "probe"

    def test_a_missing_client_key_is_named_too(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Every librdkafka `*.location` file property is checked the same way (mTLS key here)."""
        monkeypatch.setenv("KAFKA_SSL_KEY_LOCATION", str(tmp_path / "client.key"))
        with pytest.raises(ConfigurationError, match="KAFKA_SSL_KEY_LOCATION"):
            load_settings(RunnerSettings)

    def test_a_service_with_a_missing_ca_file_exits_2_with_one_line_naming_it(
        self, tmp_path: Path
    ) -> None:
        """A real service started with a CA path that does not exist exits 2, its one stderr line naming KAFKA_SSL_CA_LOCATION and the path."""
        missing = tmp_path / "ca.pem"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
            KAFKA_SECURITY_PROTOCOL="SSL",
            KAFKA_SSL_CA_LOCATION=str(missing),
            HTTP_PORT="0",
            EVENT_LOG_PATH=str(tmp_path / "events.jsonl"),
        )
        done = subprocess.run(
            [sys.executable, "-m", "examples.event_log"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "KAFKA_SSL_CA_LOCATION" in lines[0]
        assert str(missing) in lines[0]
