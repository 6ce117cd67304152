"""Whether a member is alive, as PostgreSQL sees it: one advisory lock per running member.

A send claim (`notification_claim`) names its owner. When the owner dies between claiming
and recording, the others used to wait `repository.CLAIM_TTL` (120 s) before taking its
claims over, and every partition carrying one of those events stalled that long: after each
SIGKILL, the longest wait of the service. Now every member holds a session-level advisory
lock, keyed by its owner id, on a connection of its own for as long as it runs. A process
that dies loses its connection, the server ends the session and the lock goes with it, so a
member finding a claim tries that lock (`pg_try_advisory_xact_lock`, released when its
transaction ends): if it gets it, the owner is gone and the claim is taken over at once.

What this does not see: an owner whose connection the server still believes open (its
host vanished and TCP has not noticed yet) looks alive until then, and `CLAIM_TTL` stays as
the backstop. An owner whose session the server ended while the process lives on (a
database restart, `pg_terminate_backend`) looks gone: its claims may be taken over while it
is sending, which can send one email twice, with the same Message-ID, as the documented
window does (docs/notification.md). `ensure` takes the lock again on the next batch (after
the other member's transaction, if one is taking the claims over at that moment).

SQLite has no such locks and serves one host: there, only `CLAIM_TTL` applies.
"""

from __future__ import annotations

import hashlib
import weakref

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from common.errors import TransientError


def member_key(owner: str) -> int:
    """The advisory lock key of `owner`: 64 bits of its hash, as PostgreSQL's signed bigint."""
    digest = hashlib.blake2b(owner.encode(), digest_size=8, person=b"dreamscape-ntf").digest()
    return int.from_bytes(digest, "big", signed=True)


def is_gone(session: Session, owner: str) -> bool:
    """Whether `owner` holds no presence lock (PostgreSQL; False on SQLite, which cannot tell).

    Taking the lock for the rest of `session`'s transaction also keeps two members from
    both deciding, at the same instant, that they are the one to take a claim over.
    """
    if session.get_bind().dialect.name != "postgresql":
        return False
    statement = text("SELECT pg_try_advisory_xact_lock(:key)")
    return bool(session.execute(statement, {"key": member_key(owner)}).scalar())


class Presence:
    """This member's presence lock, taken on first use and again whenever its session ended."""

    def __init__(self, engine: Engine, owner: str) -> None:
        self._engine = engine
        self._key = member_key(owner)
        self._enabled = engine.dialect.name == "postgresql"
        self._connection: Connection | None = None
        self._finalizer: weakref.finalize[[], Presence] | None = None

    def ensure(self) -> None:
        """Hold the lock before claiming anything; raises the database's error if it is down.

        One `SELECT 1` per call tells whether the session still exists: a terminated one
        fails it, and a new connection takes the lock again.
        """
        if not self._enabled:
            return
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1"))
                return
            except DBAPIError:
                self.close()
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        connection.detach()  # closing it ends the session (and the lock), not a pool check-in
        try:
            held = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            ).scalar()
        except BaseException:
            connection.close()
            raise
        if not held:  # another member is in the middle of taking this member's claims over
            connection.close()
            raise TransientError("another member is taking this member's claims over")
        self._connection = connection
        self._finalizer = weakref.finalize(self, connection.close)

    def close(self) -> None:
        """Close the lock's connection: once the server has ended the session, it is free."""
        if self._finalizer is not None:
            self._finalizer()
        self._connection = self._finalizer = None
