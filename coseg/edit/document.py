"""An editable segmented scene with unlimited undo/redo.

`EditDocument` owns the Gaussians being edited. Rows are never physically
removed while editing: a delete flips a `deleted` mask and a duplicate appends
rows, so every Gaussian keeps its index for the whole session and undo is a
bit-exact restore of the rows an edit touched (memory proportional to the edit,
not to the scene). Export drops deleted rows.

Every public edit is one undo step. `group(name)` merges the edits made inside
it into one step (a whole drag in the studio is one step), like napari's
`block_history()`. The list of applied operations (`ops`) is plain JSON: a
studio project stores it, and `replay` rebuilds the same edited scene from the
original file.

Listeners (plain callbacks, GUI-free) are told which rows changed after every
edit, undo and redo: ``listener(rows: np.ndarray | None)`` (None = all).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from coseg.edit import ops
from coseg.gaussians import Gaussians

_ROW_FIELDS = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")


@dataclass
class _Atom:
    """One reversible change: rows rewritten, mask flipped, or rows appended."""

    kind: str  # "rows" | "mask" | "append"
    rows: np.ndarray
    before: dict[str, np.ndarray] = field(default_factory=dict)
    after: dict[str, np.ndarray] = field(default_factory=dict)
    appended: Gaussians | None = None


@dataclass
class _Step:
    name: str
    atoms: list[_Atom]
    ops: list[dict]


class EditDocument:
    """Gaussians under edit, with segment-level operations and history."""

    def __init__(self, gaussians: Gaussians) -> None:
        self.gaussians = gaussians.copy()
        if self.gaussians.segments is None:
            self.gaussians.segments = np.zeros(len(gaussians), np.int32)
        self.deleted = np.zeros(len(gaussians), bool)
        self._undo: list[_Step] = []
        self._redo: list[_Step] = []
        self._group: _Step | None = None
        self.listeners: list[Callable[[np.ndarray | None], None]] = []

    # ------------------------------------------------------------ queries
    @property
    def segments(self) -> np.ndarray:
        return self.gaussians.segments

    def segment_ids(self) -> np.ndarray:
        """Sorted ids of segments that still have live Gaussians."""
        return np.unique(self.segments[~self.deleted])

    def rows_of(self, segment_ids) -> np.ndarray:
        """Indices of the live Gaussians in the given segments."""
        ids = np.atleast_1d(np.asarray(segment_ids, np.int64))
        return np.flatnonzero(np.isin(self.segments, ids) & ~self.deleted)

    def center_of(self, segment_ids) -> np.ndarray:
        rows = self.rows_of(segment_ids)
        return self.gaussians.means[rows].mean(0) if len(rows) else np.zeros(3, np.float32)

    def result(self, segment_ids=None) -> Gaussians:
        """The edited scene (deleted rows dropped), optionally only some segments."""
        keep = ~self.deleted
        if segment_ids is not None:
            keep &= np.isin(self.segments, np.atleast_1d(np.asarray(segment_ids)))
        return self.gaussians.subset(keep)

    @property
    def in_group(self) -> bool:
        """True inside `group()`: edits accumulate into one step that is not yet in the history."""
        return self._group is not None

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def ops(self) -> list[dict]:
        """JSON-able list of the operations currently applied, in order."""
        return [op for step in self._undo for op in step.ops]

    # ------------------------------------------------------------ edits
    def delete(self, segment_ids) -> None:
        rows = self.rows_of(segment_ids)
        self._commit("Delete", [self._mask_atom(rows, True)], {"op": "delete", "segments": _ids(segment_ids)})

    def translate(self, segment_ids, delta) -> None:
        rows = self.rows_of(segment_ids)
        new = ops.translate(self.gaussians, rows, delta)
        self._commit("Move", [self._rows_atom(rows, new)],
                     {"op": "move", "segments": _ids(segment_ids), "delta": [float(v) for v in delta]})

    def rotate(self, segment_ids, degrees) -> None:
        rows = self.rows_of(segment_ids)
        new = ops.rotate(self.gaussians, rows, degrees)
        self._commit("Rotate", [self._rows_atom(rows, new)],
                     {"op": "rotate", "segments": _ids(segment_ids), "degrees": [float(v) for v in degrees]})

    def recolor(self, segment_ids, rgb) -> None:
        rows = self.rows_of(segment_ids)
        new = ops.recolor(self.gaussians, rows, rgb)
        self._commit("Recolor", [self._rows_atom(rows, new)],
                     {"op": "recolor", "segments": _ids(segment_ids), "rgb": [float(v) for v in rgb]})

    def duplicate(self, segment_ids, offset=None) -> list[int]:
        """Copy each segment beside itself; returns the new segment ids."""
        atoms, new_ids = [], []
        next_id = int(self.segments.max(initial=-1)) + 1
        for sid in _ids(segment_ids):
            rows = self.rows_of(sid)
            if not len(rows):
                continue
            off = ops.default_duplicate_offset(self.gaussians, rows) if offset is None else offset
            part = ops.duplicate(self.gaussians, rows, off, next_id)
            atoms.append(self._append_atom(part))
            new_ids.append(next_id)
            next_id += 1
        op = {"op": "duplicate", "segments": _ids(segment_ids)}
        if offset is not None:
            op["offset"] = [float(v) for v in offset]
        self._commit("Duplicate", atoms, op)
        return new_ids

    @contextlib.contextmanager
    def group(self, name: str) -> Iterator[None]:
        """Merge every edit made inside the block into one undo step."""
        if self._group is not None:  # nested groups fold into the outer one
            yield
            return
        self._group = _Step(name, [], [])
        try:
            yield
        finally:
            step, self._group = self._group, None
            if step.atoms:
                self._undo.append(step)
                self._redo.clear()

    # ------------------------------------------------------------ history
    def undo(self) -> bool:
        if not self._undo:
            return False
        step = self._undo.pop()
        for atom in reversed(step.atoms):
            self._revert(atom)
        self._redo.append(step)
        self._notify(None)
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        step = self._redo.pop()
        for atom in step.atoms:
            self._apply(atom)
        self._undo.append(step)
        self._notify(None)
        return True

    def replay(self, op_list: list[dict]) -> None:
        """Apply a list of operations (from `ops` of another session) in order."""
        for op in op_list:
            kind, segs = op.get("op"), op.get("segments", [])
            if kind == "delete":
                self.delete(segs)
            elif kind == "move":
                self.translate(segs, op["delta"])
            elif kind == "rotate":
                self.rotate(segs, op["degrees"])
            elif kind == "recolor":
                self.recolor(segs, op["rgb"])
            elif kind == "duplicate":
                self.duplicate(segs, op.get("offset"))
            else:
                raise ValueError(f"unknown edit operation {kind!r}")

    # ------------------------------------------------------------ internals
    def _rows_atom(self, rows: np.ndarray, new: dict[str, np.ndarray]) -> _Atom:
        before = {k: getattr(self.gaussians, k)[rows].copy() for k in new}
        return _Atom("rows", rows, before=before, after=new)

    def _mask_atom(self, rows: np.ndarray, value: bool) -> _Atom:
        return _Atom("mask", rows, before={"deleted": self.deleted[rows].copy()},
                     after={"deleted": np.full(len(rows), value)})

    def _append_atom(self, part: Gaussians) -> _Atom:
        n = len(self.gaussians)
        return _Atom("append", np.arange(n, n + len(part)), appended=part)

    def _apply(self, atom: _Atom) -> None:
        if atom.kind == "rows":
            for k, v in atom.after.items():
                getattr(self.gaussians, k)[atom.rows] = v
        elif atom.kind == "mask":
            self.deleted[atom.rows] = atom.after["deleted"]
        else:
            self.gaussians = Gaussians.concatenate([self.gaussians, atom.appended])
            self.deleted = np.concatenate([self.deleted, np.zeros(len(atom.appended), bool)])

    def _revert(self, atom: _Atom) -> None:
        if atom.kind == "rows":
            for k, v in atom.before.items():
                getattr(self.gaussians, k)[atom.rows] = v
        elif atom.kind == "mask":
            self.deleted[atom.rows] = atom.before["deleted"]
        else:
            keep = len(self.gaussians) - len(atom.appended)
            self.gaussians = self.gaussians.subset(np.arange(keep))
            self.deleted = self.deleted[:keep]

    def _commit(self, name: str, atoms: list[_Atom], op: dict) -> None:
        for atom in atoms:
            self._apply(atom)
        if self._group is not None:
            self._group.atoms.extend(atoms)
            self._group.ops.append(op)
        elif atoms:
            self._undo.append(_Step(name, atoms, [op]))
            self._redo.clear()
        rows = np.concatenate([a.rows for a in atoms]) if atoms else np.zeros(0, np.int64)
        self._notify(rows)

    def _notify(self, rows: np.ndarray | None) -> None:
        for fn in list(self.listeners):
            fn(rows)


def _ids(segment_ids) -> list[int]:
    return [int(s) for s in np.atleast_1d(np.asarray(segment_ids))]
