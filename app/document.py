"""The studio's model: the opened scene, its segments, the selection and edits.

`StudioDocument` wraps a `coseg.edit.EditDocument` (which owns the Gaussians
and the undo history, GUI-free) and adds what only the studio needs: segment
names, hidden and locked segments and the selection. Views subscribe to its
Qt signals; the viewport refreshes only the GPU buffers an edit touched.

Edits go through `edit(fn)` so that locked segments are skipped and the
viewport hears about the change: ``doc.edit(lambda e, ids: e.delete(ids))``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.loading import LoadedModel
from app.palette import segment_colors
from coseg.edit import EditDocument


class StudioDocument(QObject):
    """The opened model plus segment state (see module docstring)."""

    model_changed = Signal()
    """A new model was loaded (everything changed)."""
    rows_changed = Signal(object)
    """Gaussian rows changed by an edit, undo or redo (np.ndarray, or None for all)."""
    segments_changed = Signal()
    """Segment list, names, visibility or locks changed."""
    state_changed = Signal()
    """Hidden segments changed (only the per-Gaussian state needs redrawing)."""
    selection_changed = Signal()
    history_changed = Signal()
    """An undo step was added, undone or redone (a drag: once, when it ends)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.loaded: LoadedModel | None = None
        self.edits: EditDocument | None = None
        self.names: dict[int, str] = {}
        self.hidden: set[int] = set()
        self.locked: set[int] = set()
        self.selection: set[int] = set()
        self._counts: dict[int, int] | None = None

    # ------------------------------------------------------------ loading
    def set_model(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.edits = EditDocument(loaded.gaussians)
        self.edits.listeners.append(self._on_edit)
        self._counts = None
        if loaded.gaussians.segments is None:
            self.names = {0: "unsegmented"}
        else:
            self.names = {int(i): loaded.classes.get(int(i), f"segment {int(i)}") for i in self.segment_ids()}
        self.hidden, self.locked, self.selection = set(), set(), set()
        self.model_changed.emit()
        self.segments_changed.emit()
        self.selection_changed.emit()

    @property
    def is_open(self) -> bool:
        return self.edits is not None

    @property
    def gaussians(self):
        return self.edits.gaussians

    # ------------------------------------------------------------ segments
    def segment_ids(self) -> list[int]:
        """Sorted ids of the segments with live Gaussians."""
        return [] if self.edits is None else list(self.segment_counts())

    def segment_counts(self) -> dict[int, int]:
        """Live Gaussians per segment id (cached until the next edit)."""
        if self._counts is None:
            live = self.edits.segments[~self.edits.deleted]
            ids, counts = np.unique(live, return_counts=True)
            self._counts = {int(i): int(c) for i, c in zip(ids, counts)}
        return dict(self._counts)

    def name_of(self, segment_id: int) -> str:
        return self.names.get(int(segment_id), f"segment {int(segment_id)}")

    def rename(self, segment_id: int, name: str) -> None:
        self.names[int(segment_id)] = name
        self.segments_changed.emit()

    def set_hidden(self, ids: Iterable[int], hidden: bool) -> None:
        ids = {int(i) for i in ids}
        self.hidden = self.hidden | ids if hidden else self.hidden - ids
        self.segments_changed.emit()
        self.state_changed.emit()

    def set_locked(self, ids: Iterable[int], locked: bool) -> None:
        ids = {int(i) for i in ids}
        self.locked = self.locked | ids if locked else self.locked - ids
        self.segments_changed.emit()

    # ------------------------------------------------------------ selection
    def select(self, ids: Iterable[int], how: str = "replace") -> None:
        """Change the selection: how = "replace" | "add" | "toggle"."""
        ids = {int(i) for i in ids}
        if how == "add":
            new = self.selection | ids
        elif how == "toggle":
            new = self.selection ^ ids
        else:
            new = ids
        if new != self.selection:
            self.selection = new
            self.selection_changed.emit()

    def select_all(self) -> None:
        self.select(self.segment_ids())

    def select_none(self) -> None:
        self.select(())

    def invert_selection(self) -> None:
        self.select(set(self.segment_ids()) - self.selection)

    def selected_rows(self) -> np.ndarray:
        """[M] indices of the live Gaussians of the selected segments."""
        if not self.selection:
            return np.zeros(0, np.int64)
        return self.edits.rows_of(sorted(self.selection))

    # ------------------------------------------------------------ per-Gaussian arrays
    def segment_colors(self) -> np.ndarray:
        """[N] -> [N, 3] float32 palette colour of every Gaussian's segment."""
        return segment_colors(self.edits.segments)

    def state(self) -> np.ndarray:
        """[N] float32 viewport state: 0 normal, 1 selected, 2 hidden or deleted."""
        seg = self.edits.segments
        state = np.zeros(len(seg), np.float32)
        if self.selection:
            state[np.isin(seg, list(self.selection))] = 1.0
        hidden = self.edits.deleted.copy()
        if self.hidden:
            hidden |= np.isin(seg, list(self.hidden))
        state[hidden] = 2.0
        return state

    def visible_mask(self) -> np.ndarray:
        """[N] bool: Gaussians that are drawn (not deleted, not in a hidden segment)."""
        return self.state() < 1.5

    # ------------------------------------------------------------ edits
    def edit(self, fn: Callable[[EditDocument, list[int]], object], ids: Iterable[int] | None = None):
        """Apply an edit to the given (default: selected) segments, skipping locked ones."""
        targets = sorted(set(self.selection if ids is None else ids) - self.locked)
        if not targets or self.edits is None:
            return None
        return fn(self.edits, targets)

    def replay(self, op_list: list[dict]) -> None:
        """Apply saved operations (a project's history) with one viewport refresh at the end."""
        self.edits.listeners.remove(self._on_edit)
        try:
            self.edits.replay(op_list)
        finally:
            self.edits.listeners.append(self._on_edit)
            self._on_edit(None)

    def isolate(self, ids: Iterable[int]) -> None:
        """Hide every segment except `ids` (view state, not an edit)."""
        keep = {int(i) for i in ids}
        if keep:
            self.hidden = set(self.segment_ids()) - keep
            self.segments_changed.emit()
            self.state_changed.emit()

    def view_state(self) -> dict:
        """JSON-able names, hidden and locked segments (what a project keeps besides the edits)."""
        return {"names": {str(k): v for k, v in self.names.items()},
                "hidden": sorted(self.hidden), "locked": sorted(self.locked)}

    def apply_view_state(self, view: dict) -> None:
        self.names.update({int(k): str(v) for k, v in (view.get("names") or {}).items()})
        self.locked = {int(i) for i in view.get("locked", [])}
        self.set_hidden([int(i) for i in view.get("hidden", [])], True)

    def undo(self) -> bool:
        return self.edits is not None and self.edits.undo()

    def redo(self) -> bool:
        return self.edits is not None and self.edits.redo()

    def _on_edit(self, rows: np.ndarray | None) -> None:
        self._counts = None
        known = set(self.names)
        for i in self.segment_ids():
            if i not in known:
                self.names[i] = self.loaded.classes.get(i, f"segment {i}")
        self.selection &= set(self.segment_ids())
        self.rows_changed.emit(rows)
        self.segments_changed.emit()
        if not self.edits.in_group:
            self.history_changed.emit()
