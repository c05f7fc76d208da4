"""Ctrl-C as a polite stop request for the CLI's long-running generators."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def stop_on_sigint(what: str = "step") -> Iterator[threading.Event]:
    """A threading.Event set by the first Ctrl-C; a second Ctrl-C aborts at once.

    The generators check the event at every yield and write a checkpoint
    before they stop.
    """
    stop = threading.Event()

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.warning("stopping after the current %s (Ctrl-C again to abort)", what)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
