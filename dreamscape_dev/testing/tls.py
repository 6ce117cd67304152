"""A throw-away certificate authority and broker certificate, made by `keytool` for one test run.

`keytool` ships with the JDK that Apache Kafka needs anyway, so the secured broker adds no
dependency: the CA signs a broker certificate for `127.0.0.1` and `localhost` (librdkafka
checks the broker's name by default, `ssl.endpoint.identification.algorithm=https`), the
broker keeps key and chain in a PKCS12 keystore, and clients trust the CA from a PEM file
(`ssl.ca.location`). For mTLS the CA also signs one client certificate per name, each in a
PKCS12 keystore librdkafka reads (`ssl.keystore.location`), and the broker trusts the CA
from the same PEM file (`ssl.truststore.type=PEM`). Everything lives in one directory the caller throws away; the
keys never leave it and expire after two days.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
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
    """The files a TLS listener and its clients need; one password opens every store."""

    ca_pem: Path
    """The CA certificate in PEM: what clients trust (`ssl.ca.location`)."""
    keystore: Path
    """PKCS12 with the broker's key and its chain up to the CA (`ssl.keystore.location`)."""
    clients: Mapping[str, Path]
    """Per client name, a PKCS12 keystore with a `CN=<name>` certificate the CA signed."""
    password: str
    """The stores' and the keys' password (`ssl.keystore.password`, `ssl.key.password`)."""


def _keytool(*args: str | Path) -> None:
    result = subprocess.run(
        ["keytool", *_JVM, *map(str, args)], capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise TlsSetupError(f"keytool {args[0]} failed:\n{result.stdout}{result.stderr}")


@dataclass(frozen=True, slots=True)
class _Leaf:
    """One key pair the CA signs: where its keystore lives and what its certificate says."""

    alias: str
    dname: str
    keystore: Path
    extensions: tuple[str, ...]

    def request(self, store: tuple[str, ...]) -> None:
        """Make the key pair and a signing request for it."""
        _keytool("-genkeypair", "-alias", self.alias, *_KEY, "-dname", self.dname,
                 "-validity", _VALIDITY_DAYS, "-keystore", self.keystore, *store)  # fmt: skip
        _keytool("-certreq", "-alias", self.alias, "-file", self._csr, "-keystore", self.keystore,
                 *store)  # fmt: skip

    def sign(self, ca: Path, ca_pem: Path, store: tuple[str, ...]) -> None:
        """Have the CA sign the request; store the chain (the CA first, then the reply)."""
        signed = self.keystore.with_suffix(".pem")
        _keytool("-gencert", "-rfc", "-alias", "ca", "-infile", self._csr, "-outfile", signed,
                 *self.extensions, "-validity", _VALIDITY_DAYS, "-keystore", ca, *store)  # fmt: skip
        _keytool("-importcert", "-noprompt", "-alias", "ca", "-file", ca_pem,
                 "-keystore", self.keystore, *store)  # fmt: skip
        _keytool("-importcert", "-alias", self.alias, "-file", signed, "-keystore", self.keystore,
                 *store)  # fmt: skip

    @property
    def _csr(self) -> Path:
        return self.keystore.with_suffix(".csr")


def make_broker_tls(
    directory: Path, *, clients: Sequence[str] = (), name: str = "dreamscape-test"
) -> BrokerTls:
    """A CA, a broker certificate for loopback and one client certificate per name in
    `clients` (for mTLS), all signed by the CA, in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(16)
    store = ("-storetype", "PKCS12", "-storepass", password, "-keypass", password)
    ca, ca_pem = directory / "ca.p12", directory / "ca.pem"
    broker = _Leaf("broker", f"CN={name} broker", directory / "broker.p12",
                   ("-ext", "SAN=ip:127.0.0.1,dns:localhost", "-ext", "EKU=serverAuth"))  # fmt: skip
    leaves = [broker] + [
        _Leaf(
            "client", f"CN={client}", directory / f"client-{client}.p12", ("-ext", "EKU=clientAuth")
        )
        for client in clients
    ]

    def make_ca() -> None:
        _keytool("-genkeypair", "-alias", "ca", *_KEY, "-dname", f"CN={name} CA", "-ext", "bc:c",
                 "-validity", _VALIDITY_DAYS, "-keystore", ca, *store)  # fmt: skip
        _keytool("-exportcert", "-rfc", "-alias", "ca", "-file", ca_pem, "-keystore", ca, *store)

    with ThreadPoolExecutor(2) as pool:  # two JVMs at a time: the steps of one chain are serial
        _all(pool, [make_ca, *(partial(leaf.request, store) for leaf in leaves)])
        _all(pool, [partial(leaf.sign, ca, ca_pem, store) for leaf in leaves])
    return BrokerTls(
        ca_pem=ca_pem,
        keystore=broker.keystore,
        clients={client: leaf.keystore for client, leaf in zip(clients, leaves[1:], strict=True)},
        password=password,
    )


def _all(pool: ThreadPoolExecutor, steps: Sequence[Callable[[], None]]) -> None:
    for done in [pool.submit(step) for step in steps]:
        done.result()
