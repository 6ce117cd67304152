"""Child processes that do not outlive the test run that started them."""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn` for servers a test run starts: SIGKILL them when the parent dies (Linux).

    A run killed hard (a CI timeout, SIGKILL) would otherwise leave broker JVMs and database
    servers running, holding ports and memory. The signal follows the thread that started
    the child, so start servers from the main thread.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
