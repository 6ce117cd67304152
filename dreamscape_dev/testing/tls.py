"""A throw-away certificate authority and broker certificate, made by `keytool` for one test run.

`keytool` ships with the JDK that Apache Kafka needs anyway, so the secured broker adds no
dependency: the CA signs a broker certificate for `127.0.0.1` and `localhost` (librdkafka
checks the broker's name by default, `ssl.endpoint.identification.algorithm=https`), the
broker keeps key and chain in a PKCS12 keystore, and clients trust the CA from a PEM file
(`ssl.ca.location`). Everything lives in one directory the caller throws away; the keys
never leave it and expire after two days.
"""

from __future__ import annotations

import secrets
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dreamscape_dev.testing.apache_kafka import JVM_FLAGS

_VALIDITY_DAYS = "2"
#: keytool is a short-lived JVM: the same start-up flags as the test broker's.
_JVM = tuple(f"-J{flag}" for flag in JVM_FLAGS)
_KEY = ("-keyalg", "EC", "-groupname", "secp256r1")  # quicker to make than RSA, TLS 1.3-ready


class TlsSetupError(RuntimeError):
    """keytool failed; the message carries its output."""


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """The files a TLS listener and its clients need."""

    ca_pem: Path
    """The CA certificate in PEM: what clients trust (`ssl.ca.location`)."""
    keystore: Path
    """PKCS12 with the broker's key and its chain up to the CA (`ssl.keystore.location`)."""
    password: str
    """The keystore's and the key's password (`ssl.keystore.password`, `ssl.key.password`)."""


def _keytool(*args: str | Path) -> None:
    result = subprocess.run(
        ["keytool", *_JVM, *map(str, args)], capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise TlsSetupError(f"keytool {args[0]} failed:\n{result.stdout}{result.stderr}")


def _both(
    pool: ThreadPoolExecutor, first: tuple[str | Path, ...], second: tuple[str | Path, ...]
) -> None:
    for done in [pool.submit(_keytool, *first), pool.submit(_keytool, *second)]:
        done.result()


def make_broker_tls(directory: Path, *, name: str = "dreamscape-test") -> BrokerTls:
    """A CA and a broker certificate it signed, for a broker on loopback, in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(16)
    ca_store, ca_pem = directory / "ca.p12", directory / "ca.pem"
    keystore, request, signed = (
        directory / "broker.p12",
        directory / "broker.csr",
        directory / "broker.pem",
    )
    store = ("-storetype", "PKCS12", "-storepass", password, "-keypass", password)
    with ThreadPoolExecutor(2) as pool:  # two JVMs at a time where the steps allow it
        _both(pool,
              ("-genkeypair", "-alias", "ca", *_KEY, "-dname", f"CN={name} CA", "-ext", "bc:c",
               "-validity", _VALIDITY_DAYS, "-keystore", ca_store, *store),
              ("-genkeypair", "-alias", "broker", *_KEY, "-dname", f"CN={name} broker",
               "-validity", _VALIDITY_DAYS, "-keystore", keystore, *store))  # fmt: skip
        _both(pool,
              ("-exportcert", "-rfc", "-alias", "ca", "-file", ca_pem, "-keystore", ca_store, *store),
              ("-certreq", "-alias", "broker", "-file", request, "-keystore", keystore, *store))  # fmt: skip
    _keytool("-gencert", "-rfc", "-alias", "ca", "-infile", request, "-outfile", signed,
             "-ext", "SAN=ip:127.0.0.1,dns:localhost", "-ext", "EKU=serverAuth",
             "-validity", _VALIDITY_DAYS, "-keystore", ca_store, *store)  # fmt: skip
    # The chain: the CA first, so the signed certificate's reply is accepted in its place.
    _keytool(
        "-importcert", "-noprompt", "-alias", "ca", "-file", ca_pem, "-keystore", keystore, *store
    )
    _keytool("-importcert", "-alias", "broker", "-file", signed, "-keystore", keystore, *store)
    return BrokerTls(ca_pem=ca_pem, keystore=keystore, password=password)
