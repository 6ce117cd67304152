"""The parallel sender without a server: results, the first error, and nothing new after it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from notification_consumer.mailer import Mailer
from notification_consumer.smtp import MailSession, SmtpConfig, SmtpUnavailable

CONFIG = SmtpConfig(host="127.0.0.1", port=9)  # never dialled: the work below sends nothing


@pytest.mark.parametrize("connections", [1, 4])
def test_every_result_comes_back_on_the_calling_thread(connections: int) -> None:
    """Each job's result reaches on_result once, on the thread that called deliver."""
    mailer = Mailer(CONFIG, connections=connections)
    caller, seen = threading.get_ident(), []

    def on_result(value: int) -> None:
        assert threading.get_ident() == caller
        seen.append(value)

    mailer.deliver(list(range(20)), lambda _session, job: job * 2, on_result)
    mailer.close()
    assert sorted(seen) == [n * 2 for n in range(20)]


@pytest.mark.parametrize("connections", [1, 4])
def test_a_failure_stops_new_sends_and_is_raised_after_the_results(connections: int) -> None:
    """After one send fails, no new send starts; results reached are delivered, then the error is raised."""
    mailer = Mailer(CONFIG, connections=connections)
    failed_once = threading.Event()
    started_after_failure: list[int] = []
    seen: list[int] = []

    def work(_session: MailSession, job: int) -> int:
        if failed_once.is_set():
            started_after_failure.append(job)
        if job == 5:
            failed_once.set()
            raise SmtpUnavailable("connection refused")
        return job

    with pytest.raises(SmtpUnavailable):
        mailer.deliver(list(range(40)), work, seen.append)
    mailer.close()
    assert 5 not in seen
    assert set(range(5)) <= set(seen)  # jobs start in order, and started ones finish
    assert len(started_after_failure) <= connections - 1  # only sends already under way


@pytest.mark.parametrize("connections", [1, 4])
def test_an_outcome_callback_that_fails_still_gets_every_finished_send(connections: int) -> None:
    """If on_result raises (the ledger write failed), every send that finished is still handed to it, so no sent email loses its outcome and is sent again on the retry; then the first error is raised (issue 10, finding 15)."""
    mailer = Mailer(CONFIG, connections=connections)
    started = threading.Barrier(connections) if connections > 1 else None
    seen: list[int] = []

    def work(_session: MailSession, job: int) -> int:
        if started is not None and job < connections:
            started.wait(5)  # the first `connections` sends are all under way together
        return job

    def on_result(value: int) -> None:
        seen.append(value)
        if len(seen) == 1:
            raise RuntimeError("ledger write refused")

    with pytest.raises(RuntimeError, match="ledger"):
        mailer.deliver(list(range(12)), work, on_result)
    mailer.close()
    assert set(range(connections)) <= set(seen)  # everything under way at the failure
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("connections", [1, 4])
def test_lazy_jobs_are_drawn_on_the_calling_thread_one_at_a_time(
    connections: int,
) -> None:
    """Jobs given as an iterator are drawn on the thread that called deliver, one at a time, while the connections send those drawn before: rendering runs beside the sends instead of inside the send threads, where it held the GIL that replies waited for (issue 25)."""
    mailer = Mailer(CONFIG, connections=connections)
    caller = threading.get_ident()
    drawn: list[int] = []

    def jobs() -> Iterator[int]:
        for n in range(20):
            assert threading.get_ident() == caller
            drawn.append(n)
            yield n

    seen: list[int] = []
    mailer.deliver(jobs(), lambda _session, job: job * 2, seen.append)
    mailer.close()
    assert drawn == list(range(20))
    assert sorted(seen) == [n * 2 for n in range(20)]


@pytest.mark.parametrize("connections", [1, 4])
def test_a_job_that_fails_to_prepare_stops_new_sends_after_handing_back_the_sent_ones(
    connections: int,
) -> None:
    """A job the iterator cannot produce (a template bug while rendering it) ends the call like a failed send: nothing after it is drawn or sent, every send already made reaches on_result, then the error is raised."""
    mailer = Mailer(CONFIG, connections=connections)
    drawn: list[int] = []

    def jobs() -> Iterator[int]:
        for n in range(20):
            if n == 6:
                raise ValueError("template bug")
            drawn.append(n)
            yield n

    seen: list[int] = []
    with pytest.raises(ValueError, match="template bug"):
        mailer.deliver(jobs(), lambda _session, job: job, seen.append)
    mailer.close()
    assert drawn == list(range(6))
    assert sorted(seen) == list(range(6))
