"""Sending a batch's emails over a few SMTP connections at once, kept from batch to batch.

SMTP is chatty: every message costs four round trips (MAIL, RCPT, DATA, the body), so one
connection spends most of its time waiting for the server, and a relay 5 ms away caps it
near 50 messages/s. `SMTP_CONNECTIONS` sessions, each driven by its own worker thread,
overlap those waits with each other and with rendering the next messages. The sessions outlive the handler call:
opening one costs the TCP handshake, the greeting, EHLO (and TLS, login) and closing it a
QUIT, which at 48 emails per call was a connection set-up for every 12 messages. A session
idle for a second is checked with a NOOP before it carries a message, one idle for 30 s is
replaced (`smtp.MailSession`); `close` QUITs them all at shutdown.

The jobs may come as an iterator: the handler renders each email as the mailer draws it, on
the calling thread, while the connections send the ones drawn before. Rendering in the send
threads (as before) had them hold the interpreter lock that the other threads' SMTP replies
waited for.

The first failure stops new sends (a server that refused one connection will refuse the
next); messages already in flight finish, and every outcome reached is handed back before
the error is raised, so the handler records what was sent before the run loop retries.
That holds when the failure is the outcome callback's own (the ledger write refused): the
sends that finish after it are still handed to it, one by one.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from typing import TypeVar

from notification_consumer.smtp import MailSession, SmtpConfig

J = TypeVar("J")
R = TypeVar("R")


class _NotAttempted:
    """A job skipped because an earlier one failed."""


_NOT_ATTEMPTED = _NotAttempted()


class Mailer:
    """Runs `work(session, job)` for each job over `connections` SMTP sessions."""

    def __init__(self, config: SmtpConfig, *, connections: int = 1) -> None:
        self._config = config
        self._connections = connections
        self._executor: ThreadPoolExecutor | None = None
        if connections > 1:
            self._executor = ThreadPoolExecutor(connections, thread_name_prefix="smtp")
        self._sessions: queue.SimpleQueue[MailSession] = queue.SimpleQueue()
        """Idle sessions; a worker takes one for a job and puts it back after."""
        for _ in range(connections):
            self._sessions.put(MailSession(config))

    def deliver(
        self,
        jobs: Iterable[J],
        work: Callable[[MailSession, J], R],
        on_result: Callable[[R], None],
    ) -> None:
        """Call `on_result` (on this thread) with each result; then raise the first error, if any.

        `jobs` is drawn on this thread, one job at a time as they are sent: an error raised
        drawing one (rendering it) ends the call as a failed send does.
        """
        try:
            if self._executor is None:
                session = self._sessions.get()
                try:
                    for job in jobs:
                        on_result(work(session, job))
                finally:
                    self._sessions.put(session)
                return
            self._in_parallel(self._executor, jobs, work, on_result)
        except BaseException:
            self._drop_connections()
            raise

    def _drop_connections(self) -> None:
        """After a failed call, trust no kept connection: what broke one (a cut, a restarted
        server) most likely broke the others, and within `CHECK_AFTER_S` a session sends
        without checking first, so the retry would fail again on each stale one in turn.
        Every session is back in the queue by now (`_in_parallel` waits for its jobs)."""
        for _ in range(self._connections):
            session = self._sessions.get()
            session.drop()
            self._sessions.put(session)

    def _in_parallel(
        self,
        executor: ThreadPoolExecutor,
        jobs: Iterable[J],
        work: Callable[[MailSession, J], R],
        on_result: Callable[[R], None],
    ) -> None:
        sessions = self._sessions
        failed = threading.Event()

        def run(job: J) -> R | _NotAttempted:
            if failed.is_set():
                return _NOT_ATTEMPTED
            session = sessions.get()
            try:
                return work(session, job)
            except BaseException:
                failed.set()
                raise
            finally:
                sessions.put(session)

        futures: list[Future[R | _NotAttempted]] = []
        error: BaseException | None = None
        try:
            for job in jobs:  # drawn here, on the calling thread, while earlier ones are sent
                if failed.is_set():
                    break
                # In a copy of this thread's context: the send's span (common.tracing) is a
                # child of the handler call's.
                futures.append(executor.submit(contextvars.copy_context().run, run, job))
        except BaseException as unmade:  # the job could not be made: send nothing new
            error = unmade
            failed.set()
        try:
            for future in as_completed(futures):
                if (exc := future.exception()) is not None:
                    error = error or exc
                elif not isinstance(result := future.result(), _NotAttempted):
                    try:
                        on_result(result)
                    except Exception as exc:
                        # Keep handing over the sends that finish: each one's outcome must
                        # reach the handler, or its email would be sent again on the retry.
                        error = error or exc
                        failed.set()  # start nothing new
        finally:
            failed.set()  # also when on_result raised: start nothing new
            wait(futures)  # every session is back in the queue, none in use
        if error is not None:
            raise error

    def close(self) -> None:
        """Stop the workers, then QUIT every open session (the owner calls it at shutdown)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        while not self._sessions.empty():
            self._sessions.get().close()
