"""Background jobs: a QThread that drives a coseg generator of progress records.

The engine's long work (building, segmentation) is a generator that yields a
progress record (a dict) per step and honours a `threading.Event` stop
request between steps (it then writes a checkpoint and yields a last record
with ``event == "stopped"``). `GeneratorWorker` runs such a generator in its
own QThread and turns it into Qt signals:

- ``progress(dict)`` for every record, at most one per `min_interval`
  seconds (records in between are dropped from the signal, never from the
  job; a GUI cannot show more and floods of cross-thread signals hurt),
- ``finished(dict)`` with the last record (empty if none) when the generator ends,
- ``failed(str)`` with a one-line message if it raises.

`stop()` sets the event, so a cooperative generator finishes cleanly with a
checkpoint; a generator that does not take the event is closed at its next
yield instead. `pause()` holds the generator at its next yield until
`resume()`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from PySide6.QtCore import QObject, QThread, Signal

log = logging.getLogger(__name__)

JobFactory = Callable[[threading.Event], Iterator[dict]]
"""Builds the generator; it receives the stop event to honour between steps."""


class GeneratorWorker(QThread):
    """Runs one generator in a thread (see module docstring).

    Args:
        factory: called in the worker thread with the stop event; returns the generator.
        name: shown in the log and the progress dock.
        cooperative: True when the generator honours the stop event itself
            (it then runs to its own end after `stop()`); False closes it at
            the next yield.
        min_interval: least seconds between two ``progress`` signals.
    """

    progress = Signal(dict)
    finished_with = Signal(dict)
    failed = Signal(str)

    def __init__(self, factory: JobFactory, name: str = "job", cooperative: bool = True,
                 min_interval: float = 0.02, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.factory = factory
        self.name = name
        self.cooperative = cooperative
        self.min_interval = min_interval
        self.stop_event = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self.last: dict = {}

    # ------------------------------------------------------------ control
    def stop(self) -> None:
        """Ask the job to stop at its next step boundary (also un-pauses it)."""
        self.stop_event.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    # ------------------------------------------------------------ thread body
    def run(self) -> None:
        gen = None
        try:
            gen = self.factory(self.stop_event)
            sent = -float("inf")
            for record in gen:
                self.last = dict(record)
                now = time.monotonic()
                if now - sent >= self.min_interval:
                    self.progress.emit(self.last)
                    sent = now
                self._running.wait()
                if self.stop_event.is_set() and not self.cooperative:
                    break
        except Exception as e:  # noqa: BLE001 - any failure ends the job with its message
            log.exception("%s failed", self.name)
            self.failed.emit(f"{self.name} failed: {e}")
            return
        finally:
            if gen is not None and hasattr(gen, "close"):
                gen.close()
        self.finished_with.emit(self.last)
