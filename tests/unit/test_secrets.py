"""Secrets never render: not in a crash traceback, a log line, `/readyz`, nor a settings repr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException

from common.kafka.client import KafkaConfigError, build_client
from common.schema import Schema
from common.settings import (
    ConfigurationError,
    DatabaseURL,
    RunnerSettings,
    load_settings,
    secret_value,
)
from dreamscape_dev.testing.builders import event, to_json
from notification_consumer.settings import NotificationSettings

ROOT = Path(__file__).resolve().parents[2]
KAFKA_PASSWORD = "kafka-pw-Zq81x"
KEY_PASSWORD = "key-pw-Hy27c"
DB_PASSWORD = "db-pw-Lm44t"
PAYLOAD = {"userId": "usr_payload_Qe19", "bookingId": "booking_payload_Wr52"}


def crash(log_format: str, tmp_path: Path) -> tuple[int, str]:
    """Run the crashing service under `log_format`: exit code, stdout and stderr together."""
    key_password = tmp_path / "ssl_key_password"
    key_password.write_text(KEY_PASSWORD + "\n")
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "LOG_FORMAT": log_format,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "DATABASE_URL": f"postgresql://app:{DB_PASSWORD}@db.invalid:5432/payments",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "voyage",
        "KAFKA_SASL_PASSWORD": KAFKA_PASSWORD,
        "KAFKA_SSL_KEY_PASSWORD_FILE": str(key_password),
        "CRASH_EVENT": to_json(event("payment.completed", **PAYLOAD)),
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.unit.secret_crash_service"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


class TestCrash:
    @pytest.mark.parametrize("log_format", ["json", "console"])
    def test_a_crash_shows_neither_a_secret_nor_the_payload(
        self, log_format: str, tmp_path: Path
    ) -> None:
        """A service crashing with a payment in hand logs its traceback, /readyz answers, and no password nor payload value appears anywhere."""
        code, output = crash(log_format, tmp_path)
        assert code == 1, output
        assert "the ledger disagrees with itself" in output  # the crash was logged
        assert "CriticalError" in output  # with its traceback
        assert "/readyz: " in output
        assert "/healthz: " in output
        for secret in (KAFKA_PASSWORD, KEY_PASSWORD, DB_PASSWORD, *PAYLOAD.values()):
            assert secret not in output, f"{secret!r} in the output:\n{output}"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No KAFKA_*, DATABASE_URL or SMTP variable from the calling shell."""
    for name in list(os.environ):
        if name.startswith(("KAFKA_", "DATABASE_URL", "SMTP_")):
            monkeypatch.delenv(name)
    return monkeypatch


def secrets_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


class TestSettingsNeverRenderSecrets:
    SECRET_PROPERTIES = (
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_KEY_PASSWORD",
        "KAFKA_SSL_KEYSTORE_PASSWORD",
        "KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET",
        "KAFKA_SSL_KEY_PEM",
        "KAFKA_SASL_OAUTHBEARER_CONFIG",
    )

    def test_kafka_secret_properties_are_masked_but_reach_the_client(
        self, environment: pytest.MonkeyPatch
    ) -> None:
        """Every secret librdkafka property is masked in the settings' repr, str, JSON and client configs, yet the configs hold the value."""
        for n, name in enumerate(self.SECRET_PROPERTIES):
            environment.setenv(name, f"secret-{n}-Xy")
        environment.setenv("KAFKA_SASL_USERNAME", "voyage")
        settings = RunnerSettings()
        consumer, producer = settings.consumer_config("g"), settings.producer_config()
        rendered = [
            repr(settings),
            str(settings),
            settings.model_dump_json(),
            repr(settings.kafka),
            str(settings.kafka),
            repr(consumer),
            repr(producer),
            f"{settings.kafka}",
        ]
        for text in rendered:
            assert "secret-" not in text
            assert "'sasl.username': 'voyage'" in text or '"sasl.username":"voyage"' in text
        assert consumer["sasl.password"] == producer["sasl.password"] == "secret-0-Xy"
        assert dict(settings.kafka)["sasl.oauthbearer.client.secret"] == "secret-3-Xy"

    def test_a_copy_with_plain_kafka_properties_is_masked_too(
        self, environment: pytest.MonkeyPatch
    ) -> None:
        """`model_copy(update={"kafka": {...}})` (as the CLI does) keeps the repr masked."""
        environment.setenv("KAFKA_SASL_PASSWORD", "pw-copy-9")
        settings = RunnerSettings()
        copy = settings.model_copy(update={"kafka": {**settings.kafka, "bootstrap.servers": "b"}})
        assert "pw-copy-9" not in repr(copy)
        assert "pw-copy-9" not in str(copy)

    def test_the_database_password_is_masked_and_the_url_usable(
        self, environment: pytest.MonkeyPatch
    ) -> None:
        """DATABASE_URL shows host and database with the password masked; the schema gets the full URL."""
        environment.setenv("DATABASE_URL", "postgresql://app:pw-db-3@db:5432/pay?sslpassword=pw-q")
        settings = RunnerSettings()
        assert "pw-db-3" not in repr(settings)
        assert "pw-q" not in repr(settings)
        assert "postgresql://app:***@db:5432/pay" in repr(settings)
        assert "pw-db-3" not in settings.model_dump_json()
        assert secret_value(settings.database_url) == (
            "postgresql://app:pw-db-3@db:5432/pay?sslpassword=pw-q"
        )
        assert "pw-db-3" in Schema("voyage", "voyage_consumer.migrations", ()).url(settings)

    def test_an_unreadable_url_is_masked_whole(self) -> None:
        """A URL SQLAlchemy cannot read shows as the mask, never as itself."""
        assert str(DatabaseURL("not a url pw-7")) == "**********"

    def test_the_smtp_password_is_masked(self, environment: pytest.MonkeyPatch) -> None:
        """The notification service's SMTP_PASSWORD is never shown by its settings."""
        environment.setenv("SMTP_PASSWORD", "pw-smtp-5")
        settings = NotificationSettings(
            mail_from="DreamScape <no-reply@dreamscape.example>",
            payment_retry_url="https://dreamscape.example/retry",
        )
        assert "pw-smtp-5" not in repr(settings)
        assert secret_value(settings.smtp_password) == "pw-smtp-5"


class TestSecretFiles:
    def test_secrets_are_read_from_file_variables(
        self, environment: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """DATABASE_URL_FILE, KAFKA_SASL_PASSWORD_FILE and SMTP_PASSWORD_FILE name files holding the values, one trailing newline dropped."""
        url = "postgresql://app:pw-f1@db/pay"
        environment.setenv("DATABASE_URL_FILE", secrets_file(tmp_path, "url", url + "\n"))
        environment.setenv("KAFKA_SASL_PASSWORD_FILE", secrets_file(tmp_path, "k", "pw-f2 \n"))
        environment.setenv("SMTP_PASSWORD_FILE", secrets_file(tmp_path, "s", "pw-f3"))
        settings = NotificationSettings(
            mail_from="DreamScape <no-reply@dreamscape.example>",
            payment_retry_url="https://dreamscape.example/retry",
        )
        assert secret_value(settings.database_url) == url
        assert settings.kafka == {"sasl.password": "pw-f2 "}
        assert secret_value(settings.smtp_password) == "pw-f3"
        assert "pw-f" not in repr(settings)

    def test_a_file_property_that_is_no_secret_passes_through(
        self, environment: pytest.MonkeyPatch
    ) -> None:
        """A librdkafka property ending in `.file` keeps its meaning: only secrets are read from files."""
        environment.setenv("KAFKA_SASL_OAUTHBEARER_ASSERTION_FILE", "/run/assertion.jwt")
        assert RunnerSettings().kafka == {"sasl.oauthbearer.assertion.file": "/run/assertion.jwt"}

    @pytest.mark.parametrize("variable", ["DATABASE_URL", "KAFKA_SASL_PASSWORD"])
    def test_a_variable_and_its_file_together_are_refused(
        self, variable: str, environment: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Setting both `X` and `X_FILE` is a configuration error naming both."""
        environment.setenv(variable, "sqlite:///inline.db")
        environment.setenv(f"{variable}_FILE", secrets_file(tmp_path, "f", "sqlite:///file.db"))
        with pytest.raises(ConfigurationError, match=f"{variable} and {variable}_FILE"):
            load_settings(RunnerSettings)

    def test_an_unreadable_file_names_the_variable_and_the_path(
        self, environment: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """A secret file that cannot be read is a configuration error naming the variable and path."""
        missing = tmp_path / "absent"
        environment.setenv("KAFKA_SSL_KEY_PASSWORD_FILE", str(missing))
        with pytest.raises(ConfigurationError) as raised:
            load_settings(RunnerSettings)
        assert "KAFKA_SSL_KEY_PASSWORD_FILE" in str(raised.value)
        assert str(missing) in str(raised.value)


class TestClientErrors:
    def test_a_refused_configuration_never_echoes_a_secret(self) -> None:
        """When librdkafka refuses a configuration quoting a secret value, the error shows the mask."""

        def refuse(config: dict[str, Any]) -> None:
            raise KafkaException(f'Invalid value "{config["sasl.password"]}" for "sasl.password"')

        config = {"sasl.password": "pw-echo-1", "sasl.username": "voyage"}
        with pytest.raises(KafkaConfigError) as raised:
            build_client(refuse, config)
        assert "pw-echo-1" not in str(raised.value)
        assert "**********" in str(raised.value)
