"""Plain-callback events for the GUI-free editor models (no Qt in coseg).

A model owns `Signal` attributes; a view calls ``signal.connect(fn)`` and is
called back with the signal's arguments after every change. In the studio
the Qt side re-emits them as Qt signals (`app.document`), so there is one
event mechanism per layer, as napari keeps its evented models outside Qt.
``with signal.blocked():`` mutes a signal (to make several changes and
announce them once, or to block an echo).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator


class Signal:
    """A list of callbacks called in connection order by `emit`."""

    def __init__(self) -> None:
        self._callbacks: list[Callable] = []
        self._blocked = 0

    def connect(self, fn: Callable) -> Callable:
        """Call `fn(*args)` on every `emit(*args)`; returns `fn` (usable as a decorator)."""
        if fn not in self._callbacks:
            self._callbacks.append(fn)
        return fn

    def disconnect(self, fn: Callable) -> None:
        if fn in self._callbacks:
            self._callbacks.remove(fn)

    def emit(self, *args) -> None:
        if self._blocked:
            return
        for fn in list(self._callbacks):
            fn(*args)

    @contextlib.contextmanager
    def blocked(self) -> Iterator[None]:
        """Mute the signal inside the block."""
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1
