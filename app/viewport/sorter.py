"""Depth sorting off the GUI thread.

`DepthSorter` owns one QThread. The viewport asks for an order with
`request(means, viewmat)`; the thread runs `coseg.sort.depth_order`, then emits
`ready`. Requests that arrive while a sort is
running collapse into the newest one, so the thread never falls behind the
camera and the frame keeps drawing with the previous order meanwhile.
"""

from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from coseg.sort import depth_order


class _SortWorker(QObject):
    ready = Signal(int, object, object)  # generation, order [N] uint32, viewmat [4, 4]

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._pending: tuple[int, np.ndarray, np.ndarray] | None = None

    def submit(self, generation: int, means: np.ndarray, viewmat: np.ndarray) -> bool:
        """Store the newest request; True when the thread must be woken."""
        with self._lock:
            wake = self._pending is None
            self._pending = (generation, means, viewmat)
        return wake

    @Slot()
    def run_pending(self) -> None:
        while True:
            with self._lock:
                job, self._pending = self._pending, None
            if job is None:
                return
            generation, means, viewmat = job
            self.ready.emit(generation, depth_order(means, viewmat), viewmat)


class DepthSorter(QObject):
    """Background back-to-front sorting for one viewport."""

    ready = Signal(int, object, object)
    """(generation, order [N] uint32, viewmat the order was computed for)."""
    _wake = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("coseg-depth-sort")
        self._worker = _SortWorker()
        self._worker.moveToThread(self._thread)
        self._wake.connect(self._worker.run_pending)
        self._worker.ready.connect(self.ready)
        self._thread.start()

    def request(self, generation: int, means: np.ndarray, viewmat: np.ndarray) -> None:
        """Ask for the order of `means` [N, 3] seen through `viewmat` [4, 4]."""
        if self._worker.submit(generation, means, np.array(viewmat, copy=True)):
            self._wake.emit()

    def shutdown(self) -> None:
        """Stop the thread (waits for a running sort to finish)."""
        self._thread.quit()
        self._thread.wait()
