"""The editor's view state, GUI-free: splat selection, hidden splats, locked segments.

`EditorState` sits beside an `EditDocument` (which owns the Gaussians, the
segment names and the undo history) and holds what is not an edit:

- `selection`: [N] bool over the Gaussians. Segment selection is one way to
  set it (`select_segments`); the screen tools, volumes and filters of
  `coseg.edit.selection` are the others. Deleted rows are never selected.
- `hidden`: [N] bool, splats not drawn and not selectable (hide / isolate /
  show all). A segment counts as hidden when all its live rows are.
- `locked`: segment ids that edits skip (`editable_rows`).

Views subscribe to the `Signal`s `selection_changed`, `hidden_changed` and
`locked_changed` (plain callbacks; `app.document` turns them into Qt
signals). Setting a value that does not change emits nothing, which is what
stops echo loops between the viewport and the panels. The masks follow the
document: rows appended by a duplicate start unselected and visible,
rows removed by an undo drop out, deleted rows leave the selection.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from coseg.edit.document import EditDocument
from coseg.edit.events import Signal
from coseg.edit.segments import segment_histogram
from coseg.edit.selection import How, combine


class EditorState:
    """Selection, hidden splats and locked segments of one document (module docstring)."""

    def __init__(self, document: EditDocument) -> None:
        self.doc = document
        n = len(document)
        self.selection = np.zeros(n, bool)
        self.hidden = np.zeros(n, bool)
        self.locked: set[int] = set()
        self.selection_changed = Signal()
        self.hidden_changed = Signal()
        self.locked_changed = Signal()
        document.changed.connect(self._document_changed)

    # ------------------------------------------------------------ masks
    @property
    def live(self) -> np.ndarray:
        """[N] bool: not deleted."""
        return ~self.doc.deleted

    @property
    def visible(self) -> np.ndarray:
        """[N] bool: drawn (not deleted, not hidden)."""
        return ~self.doc.deleted & ~self.hidden

    def selected_rows(self) -> np.ndarray:
        """[M] indices of the selected Gaussians."""
        return np.flatnonzero(self.selection)

    def selected_segments(self) -> list[int]:
        """Sorted ids of the segments with at least one selected Gaussian."""
        return list(segment_histogram(self.doc.segments, self.selection))

    def selected_per_segment(self) -> dict[int, int]:
        """Selected Gaussians per segment id (segments with none left out)."""
        return segment_histogram(self.doc.segments, self.selection)

    def editable_rows(self) -> np.ndarray:
        """[M] selected rows outside locked segments: what an edit acts on."""
        mask = self.selection.copy()
        if self.locked:
            mask &= ~np.isin(self.doc.segments, sorted(self.locked))
        return np.flatnonzero(mask)

    # ------------------------------------------------------------ selecting
    def set_selection(self, mask: np.ndarray) -> None:
        """Replace the selection by `mask` ([N] bool); deleted and hidden rows are dropped."""
        mask = np.asarray(mask, bool) & self.visible
        if mask.shape != self.selection.shape or not np.array_equal(mask, self.selection):
            self.selection = mask
            self.selection_changed.emit()

    def apply(self, picked: np.ndarray, how: How = "replace") -> None:
        """Combine a tool's result ([N] bool) with the selection: replace, add or remove."""
        self.set_selection(combine(self.selection, np.asarray(picked, bool), how, self.visible))

    def select_rows(self, rows, how: How = "replace") -> None:
        picked = np.zeros(len(self.selection), bool)
        picked[np.asarray(rows, np.int64)] = True
        self.apply(picked, how)

    def select_segments(self, ids: Iterable[int], how: How = "replace") -> None:
        ids = sorted({int(i) for i in ids})
        self.apply(np.isin(self.doc.segments, ids) if ids else np.zeros(len(self.selection), bool), how)

    def select_all(self) -> None:
        self.set_selection(self.visible)

    def select_none(self) -> None:
        self.set_selection(np.zeros(len(self.selection), bool))

    def invert_selection(self) -> None:
        self.set_selection(~self.selection)

    # ------------------------------------------------------------ hiding and locking
    def set_hidden_rows(self, mask: np.ndarray) -> None:
        mask = np.asarray(mask, bool)
        if not np.array_equal(mask, self.hidden):
            self.hidden = mask.copy()
            self.hidden_changed.emit()
            self.set_selection(self.selection)

    def hide_selection(self) -> None:
        """Hide the selected splats (they leave the selection)."""
        self.set_hidden_rows(self.hidden | self.selection)

    def isolate_selection(self) -> None:
        """Hide everything except the selection."""
        if self.selection.any():
            self.set_hidden_rows(~self.selection)

    def show_all(self) -> None:
        self.set_hidden_rows(np.zeros(len(self.hidden), bool))

    def set_segments_hidden(self, ids: Iterable[int], hidden: bool) -> None:
        rows = np.isin(self.doc.segments, sorted({int(i) for i in ids}))
        self.set_hidden_rows(self.hidden | rows if hidden else self.hidden & ~rows)

    def hidden_segments(self) -> set[int]:
        """Segments whose live rows are all hidden."""
        live = self.live
        if not self.hidden.any():
            return set()
        return set(segment_histogram(self.doc.segments, live)) - set(
            segment_histogram(self.doc.segments, live & ~self.hidden))

    def set_locked(self, ids: Iterable[int], locked: bool) -> None:
        ids = {int(i) for i in ids}
        new = self.locked | ids if locked else self.locked - ids
        if new != self.locked:
            self.locked = new
            self.locked_changed.emit()

    # ------------------------------------------------------------ following the document
    def _document_changed(self, _rows) -> None:
        n = len(self.doc)
        if n != len(self.selection):
            self.selection = _resized(self.selection, n)
            self.hidden = _resized(self.hidden, n)
            self.hidden_changed.emit()
            self.selection_changed.emit()
        dead = self.selection & self.doc.deleted
        if dead.any():
            self.selection = self.selection & ~self.doc.deleted
            self.selection_changed.emit()


def _resized(mask: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, bool)
    k = min(n, len(mask))
    out[:k] = mask[:k]
    return out
