"""SIGTERM for the command line: a scheduler's time limit (or ``kill``) unwinds a command like Ctrl-C.

    with sigterm_cleans_up():
        run()          # SIGTERM raises Terminated here; `hf-metaopt` exits 143 (Ctrl-C: 130)
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Terminated", "sigterm_cleans_up"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's time limit, ``kill``), raised so the run cleans up as after Ctrl-C."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextmanager
def sigterm_cleans_up() -> Iterator[None]:
    """While a command runs, SIGTERM unwinds it like Ctrl-C instead of ending the process on the spot."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
