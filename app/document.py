"""The studio's model adapter: the opened scene's GUI-free models, seen through Qt signals.

The state lives in `coseg.edit`: `EditDocument` (Gaussians, segment names,
undo history) and `EditorState` (splat selection mask, hidden splats,
locked segments), both Qt-free with plain-callback `Signal`s, as napari
keeps layer state in evented models outside Qt. `StudioDocument` owns one
pair per opened model and re-emits their events as Qt signals for the
views (one mechanism per layer: callbacks in coseg, Qt signals in app). It
adds the segment-level conveniences the panels use (select segments,
counts, names) and the per-Gaussian viewport state.

Edits go through `edit_rows(fn)`: `fn(edits, rows)` gets the selected rows
outside locked segments, so locked segments are never edited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.loading import LoadedModel
from app.palette import segment_colors
from coseg.edit import EditDocument
from coseg.edit.segments import segment_histogram
from coseg.edit.state import EditorState


class StudioDocument(QObject):
    """The opened model and its editor state (see module docstring)."""

    model_changed = Signal()
    """A new model was loaded (everything changed)."""
    rows_changed = Signal(object)
    """Gaussian rows changed by an edit, undo or redo (np.ndarray, or None for all)."""
    segments_changed = Signal()
    """Segment list, names, visibility or locks changed."""
    state_changed = Signal()
    """Hidden splats changed (only the per-Gaussian state needs redrawing)."""
    selection_changed = Signal()
    history_changed = Signal()
    """An undo step was added, undone or redone (a drag: once, when it ends)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.loaded: LoadedModel | None = None
        self.edits: EditDocument | None = None
        self.state: EditorState | None = None
        self._counts: dict[int, int] | None = None
        self._names_shown: dict[int, str] = {}
        self._in_replay = False

    # ------------------------------------------------------------ loading
    def set_model(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        g = loaded.gaussians
        ids = [0] if g.segments is None else list(segment_histogram(g.segments))
        names = {0: "unsegmented"} if g.segments is None else {
            int(i): loaded.classes.get(int(i), f"segment {int(i)}") for i in ids}
        self.edits = EditDocument(g, names)
        self.state = EditorState(self.edits)
        self.edits.changed.connect(self._on_edit)
        self.state.selection_changed.connect(self.selection_changed.emit)
        self.state.hidden_changed.connect(self._on_hidden)
        self.state.locked_changed.connect(self._on_locked)
        self._counts = None
        self._names_shown = dict(self.edits.names)
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
            self._counts = segment_histogram(self.edits.segments, ~self.edits.deleted)
        return dict(self._counts)

    def name_of(self, segment_id: int) -> str:
        return self.edits.name_of(segment_id) if self.edits is not None else f"segment {int(segment_id)}"

    def rename(self, segment_id: int, name: str) -> None:
        """Rename a segment (an undoable edit)."""
        if self.edits is not None:
            self.edits.rename(segment_id, name)

    @property
    def hidden(self) -> set[int]:
        """Segments whose live splats are all hidden."""
        return set() if self.state is None else self.state.hidden_segments()

    @property
    def locked(self) -> set[int]:
        return set() if self.state is None else set(self.state.locked)

    @locked.setter
    def locked(self, ids: Iterable[int]) -> None:
        self.state.set_locked(self.state.locked, False)
        self.state.set_locked(ids, True)

    def set_hidden(self, ids: Iterable[int], hidden: bool) -> None:
        self.state.set_segments_hidden(ids, hidden)

    def set_locked(self, ids: Iterable[int], locked: bool) -> None:
        self.state.set_locked(ids, locked)

    # ------------------------------------------------------------ selection
    @property
    def selection(self) -> set[int]:
        """Segments with at least one selected splat."""
        return set() if self.state is None else set(self.state.selected_segments())

    def select(self, ids: Iterable[int], how: str = "replace") -> None:
        """Select whole segments: how = "replace" | "add" | "remove" | "toggle" (remove if all selected)."""
        if self.state is None:
            return
        ids = [int(i) for i in ids]
        if how == "toggle":
            rows = np.isin(self.edits.segments, ids) & self.state.visible
            how = "remove" if rows.any() and self.state.selection[rows].all() else "add"
        self.state.select_segments(ids, how)

    def select_all(self) -> None:
        if self.state is not None:
            self.state.select_all()

    def select_none(self) -> None:
        if self.state is not None:
            self.state.select_none()

    def invert_selection(self) -> None:
        if self.state is not None:
            self.state.invert_selection()

    def selected_rows(self) -> np.ndarray:
        """[M] indices of the selected Gaussians."""
        return np.zeros(0, np.int64) if self.state is None else self.state.selected_rows()

    def editable_rows(self) -> np.ndarray:
        """[M] selected rows outside locked segments."""
        return np.zeros(0, np.int64) if self.state is None else self.state.editable_rows()

    @property
    def has_selection(self) -> bool:
        return self.state is not None and bool(self.state.selection.any())

    # ------------------------------------------------------------ per-Gaussian arrays
    def segment_colors(self) -> np.ndarray:
        """[N] -> [N, 3] float32 palette colour of every Gaussian's segment."""
        return segment_colors(self.edits.segments)

    def state_array(self) -> np.ndarray:
        """[N] float32 viewport state: 0 normal, 1 selected, 2 hidden or deleted."""
        s = self.state
        out = s.selection.astype(np.float32)
        out[self.edits.deleted | s.hidden] = 2.0
        return out

    def visible_mask(self) -> np.ndarray:
        """[N] bool: Gaussians that are drawn (not deleted, not hidden)."""
        return self.state.visible

    # ------------------------------------------------------------ edits
    def edit_rows(self, fn: Callable[[EditDocument, np.ndarray], object]):
        """Apply `fn(edits, rows)` to the selected rows outside locked segments (nothing when none)."""
        rows = self.editable_rows()
        if not len(rows) or self.edits is None:
            return None
        return fn(self.edits, rows)

    def replay(self, op_list: list[dict]) -> None:
        """Apply saved operations (a project's history) with one viewport refresh at the end."""
        self._in_replay = True
        try:
            self.edits.replay(op_list)
        finally:
            self._in_replay = False
            self._on_edit(None)

    def view_state(self) -> dict:
        """JSON-able segment names, hidden splats and locked segments (what a project keeps besides the edits)."""
        from coseg.edit.rowsets import encode_rows

        return {"names": {str(k): v for k, v in self.edits.names.items()},
                "hidden_rows": encode_rows(np.flatnonzero(self.state.hidden), len(self.edits)),
                "locked": sorted(self.state.locked)}

    def apply_view_state(self, view: dict) -> None:
        """Restore a project's view state (older projects: names and hidden segments)."""
        from coseg.edit.rowsets import decode_rows

        self.edits.names.update({int(k): str(v) for k, v in (view.get("names") or {}).items()})
        self.state.set_locked([int(i) for i in view.get("locked", [])], True)
        if view.get("hidden_rows"):
            mask = np.zeros(len(self.edits), bool)
            mask[decode_rows(view["hidden_rows"], len(self.edits))] = True
            self.state.set_hidden_rows(mask)
        elif view.get("hidden"):
            self.set_hidden([int(i) for i in view["hidden"]], True)
        self.segments_changed.emit()

    def undo(self) -> bool:
        return self.edits is not None and self.edits.undo()

    def redo(self) -> bool:
        return self.edits is not None and self.edits.redo()

    def _on_locked(self) -> None:
        self.segments_changed.emit()
        self.selection_changed.emit()  # the editable part of the selection changed

    def _on_hidden(self) -> None:
        self.segments_changed.emit()
        self.state_changed.emit()

    def _on_edit(self, rows: np.ndarray | None) -> None:
        if self._in_replay:
            return
        before = (self._counts, dict(self._names_shown))
        self._counts = None
        self._names_shown = dict(self.edits.names)
        self.rows_changed.emit(rows)
        # The segment list only changes with counts or names (a transform drag's previews change neither).
        if rows is None or before != (self.segment_counts(), self._names_shown):
            self.segments_changed.emit()
        if not self.edits.in_group:
            self.history_changed.emit()
