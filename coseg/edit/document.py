"""An editable segmented scene with unlimited undo/redo.

`EditDocument` owns the Gaussians being edited and the segment names. Rows
are never physically removed while editing: a delete flips a `deleted` mask
and a duplicate appends rows, so every Gaussian keeps its index for the
whole session and undo is a bit-exact restore of the rows an edit touched
(`coseg.edit.history`). Export drops deleted rows.

Edits act on rows (a splat-level selection) or on whole segments (what
`coseg edit` names on the command line); both are one undo step each:
delete, move, rotate, transform (rotation, uniform scale and translation
about a pivot), recolour, duplicate, and the segment fixes: assign rows to a
segment (an existing or a new one), merge segments, split a segment into its
3D-connected parts (`coseg.edit.segments`), rename. `group(name)` merges the
edits made inside it into one step; `begin_transform(rows)` starts a drag
whose previews are not recorded and whose commit is one step.

The list of applied operations (`ops`) is plain JSON: a studio project
stores it, and `replay` rebuilds the same edited scene from the original
file. An operation names its target either as ``"segments": [ids]`` or as
``"rows": {row set}`` (`coseg.edit.rowsets`).

Listeners are plain callbacks (GUI-free): `changed` is emitted after every
edit, undo and redo with the rows that changed (``np.ndarray``, or None
for all: an undo or redo that adds or removes rows); a change of names
alone emits an empty array.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from coseg.edit import ops
from coseg.edit.events import Signal
from coseg.edit.history import Atom, History, Step
from coseg.edit.rowsets import decode_rows, encode_rows, unique_rows
from coseg.edit.segments import SPLIT_SPACINGS, connected_parts, median_spacing, segment_histogram
from coseg.gaussians import Gaussians

SPLIT_MIN_POINTS = 20
"""Default smallest part a split keeps as its own segment (smaller parts join their nearest part)."""
_GEOMETRY = ("means", "quats", "log_scales")


class EditDocument:
    """Gaussians under edit, with row- and segment-level operations and history."""

    def __init__(self, gaussians: Gaussians, names: dict[int, str] | None = None) -> None:
        self.gaussians = gaussians.copy()
        if self.gaussians.segments is None:
            self.gaussians.segments = np.zeros(len(gaussians), np.int32)
        self.deleted = np.zeros(len(gaussians), bool)
        self.names: dict[int, str] = {int(k): str(v) for k, v in (names or {}).items()}
        self.history = History()
        self.changed = Signal()
        self.drag: "TransformDrag | None" = None

    # ------------------------------------------------------------ queries
    @property
    def segments(self) -> np.ndarray:
        return self.gaussians.segments

    def __len__(self) -> int:
        return len(self.gaussians)

    def segment_ids(self) -> np.ndarray:
        """Sorted ids of segments that still have live Gaussians."""
        return np.array(list(segment_histogram(self.segments, ~self.deleted)), np.int64)

    def rows_of(self, segment_ids) -> np.ndarray:
        """Indices of the live Gaussians in the given segments."""
        ids = np.atleast_1d(np.asarray(segment_ids, np.int64))
        return np.flatnonzero(np.isin(self.segments, ids) & ~self.deleted)

    def center_of(self, segment_ids) -> np.ndarray:
        rows = self.rows_of(segment_ids)
        return self.gaussians.means[rows].mean(0) if len(rows) else np.zeros(3, np.float32)

    def name_of(self, segment_id: int) -> str:
        return self.names.get(int(segment_id), f"segment {int(segment_id)}")

    def next_segment_id(self) -> int:
        """An id no row has ever had in this session (deleted rows included)."""
        return int(max(self.segments.max(initial=-1), max(self.names, default=-1))) + 1

    def result(self, segment_ids=None, rows=None) -> Gaussians:
        """The edited scene (deleted rows dropped), optionally only some segments or rows."""
        keep = ~self.deleted
        if segment_ids is not None:
            keep &= np.isin(self.segments, np.atleast_1d(np.asarray(segment_ids)))
        if rows is not None:
            only = np.zeros(len(keep), bool)
            only[np.asarray(rows, np.int64)] = True
            keep &= only
        return self.gaussians.subset(keep)

    @property
    def in_group(self) -> bool:
        """True inside `group()` or a transform drag: the step in progress is not yet in the history."""
        return self.history.open_group is not None or self.drag is not None

    @property
    def can_undo(self) -> bool:
        return bool(self.history.undo_stack)

    @property
    def can_redo(self) -> bool:
        return bool(self.history.redo_stack)

    @property
    def ops(self) -> list[dict]:
        """JSON-able list of the operations currently applied, in order."""
        return self.history.ops

    # ------------------------------------------------------------ segment-level edits (coseg edit)
    def delete(self, segment_ids) -> None:
        self.delete_rows(self.rows_of(segment_ids), _seg_target(segment_ids))

    def translate(self, segment_ids, delta) -> None:
        self.translate_rows(self.rows_of(segment_ids), delta, _seg_target(segment_ids))

    def rotate(self, segment_ids, degrees) -> None:
        self.rotate_rows(self.rows_of(segment_ids), degrees, _target=_seg_target(segment_ids))

    def recolor(self, segment_ids, rgb) -> None:
        self.recolor_rows(self.rows_of(segment_ids), rgb, _seg_target(segment_ids))

    def duplicate(self, segment_ids, offset=None) -> list[int]:
        """Copy each segment beside itself as a new segment; returns the new ids.

        Without `offset` each copy moves by `ops.legacy_duplicate_offset` of
        its own segment (how projects saved before offsets were recorded replay).
        """
        if offset is not None:
            return self.duplicate_rows(self.rows_of(segment_ids), offset, _seg_target(segment_ids))
        atoms, new_ids, next_id = [], [], self.next_segment_id()
        for sid in _ids(segment_ids):
            rows = self.rows_of(sid)
            if len(rows):
                part = ops.duplicate(self.gaussians, rows, ops.legacy_duplicate_offset(self.gaussians, rows), next_id)
                atoms += self._apply_all([self._append_atom(part),
                                          self._names_atom({next_id: f"{self.name_of(sid)} copy"})])
                new_ids.append(next_id)
                next_id += 1
        self._record("Duplicate", atoms, {"op": "duplicate", **_seg_target(segment_ids)})
        return new_ids

    # ------------------------------------------------------------ row-level edits (the studio)
    def delete_rows(self, rows, _target=None) -> None:
        rows = _rows(rows)
        atom = Atom("mask", rows, before={"deleted": self.deleted[rows].copy()},
                    after={"deleted": np.ones(len(rows), bool)})
        self._record("Delete", self._apply_all([atom]), {"op": "delete", **(_target or self._row_target(rows))})

    def translate_rows(self, rows, delta, _target=None) -> None:
        rows = _rows(rows)
        self._rewrite("Move", rows, ops.translate(self.gaussians, rows, delta),
                      {"op": "move", **(_target or self._row_target(rows)), "delta": _floats(delta)})

    def rotate_rows(self, rows, degrees, center=None, _target=None) -> None:
        """Euler rotation (degrees about world x, y, z) about `center` (default: the rows' centre)."""
        rows = _rows(rows)
        op = {"op": "rotate", **(_target or self._row_target(rows)), "degrees": _floats(degrees)}
        if center is not None:
            op["center"] = _floats(center)
        self._rewrite("Rotate", rows, ops.rotate(self.gaussians, rows, degrees, center), op)

    def transform_rows(self, rows, pivot, rotation=(1.0, 0.0, 0.0, 0.0), scale: float = 1.0,
                       translate=(0.0, 0.0, 0.0)) -> None:
        """x -> pivot + scale R (x - pivot) + translate on the rows (`ops.transform`)."""
        rows = _rows(rows)
        new = ops.transform(self.gaussians, rows, pivot, rotation, scale, translate)
        self._rewrite("Transform", rows, new, {"op": "transform", **self._row_target(rows), "pivot": _floats(pivot),
                                               "rotation": _floats(rotation), "scale": float(scale),
                                               "translate": _floats(translate)})

    def recolor_rows(self, rows, rgb, _target=None) -> None:
        rows = _rows(rows)
        self._rewrite("Recolor", rows, ops.recolor(self.gaussians, rows, rgb),
                      {"op": "recolor", **(_target or self._row_target(rows)), "rgb": _floats(rgb)})

    def duplicate_rows(self, rows, offset, _target=None) -> list[int]:
        """Copy the rows, moved by `offset`; each source segment's copies become a new segment "<name> copy"."""
        rows = _rows(rows)
        if not len(rows):
            return []
        sources = np.unique(self.segments[rows])
        first = self.next_segment_id()
        new_ids = {int(s): first + i for i, s in enumerate(sources)}
        part = ops.duplicate(self.gaussians, rows, offset, None)
        part.segments = np.array([new_ids[int(s)] for s in sources], np.int32)[np.searchsorted(sources, part.segments)]
        names = {nid: f"{self.name_of(s)} copy" for s, nid in new_ids.items()}
        op = {"op": "duplicate", **(_target or self._row_target(rows)), "offset": _floats(offset)}
        self._record("Duplicate", self._apply_all([self._append_atom(part), self._names_atom(names)]), op)
        return list(new_ids.values())

    # ------------------------------------------------------------ segment fixes
    def assign(self, rows, segment: int | None = None, name: str | None = None) -> int:
        """Give the rows segment `segment` (None: a new one, named `name`); returns the id."""
        rows = _rows(rows)
        target = self.next_segment_id() if segment is None else int(segment)
        op = {"op": "assign", **self._row_target(rows), "segment": target}
        atoms = [Atom("rows", rows, before={"segments": self.segments[rows].copy()},
                      after={"segments": np.full(len(rows), target, np.int32)})]
        if segment is None or name is not None:
            label = name or f"segment {target}"
            atoms.append(self._names_atom({target: label}))
            op["name"] = label
        self._record("Assign", self._apply_all(atoms), op)
        return target

    def merge(self, segment_ids) -> int:
        """Merge the segments into the first one; returns its id."""
        ids = _ids(segment_ids)
        rows = self.rows_of(ids[1:]) if len(ids) > 1 else np.zeros(0, np.int64)
        atom = Atom("rows", rows, before={"segments": self.segments[rows].copy()},
                    after={"segments": np.full(len(rows), ids[0], np.int32)})
        self._record("Merge", self._apply_all([atom]), {"op": "merge", "segments": ids})
        return ids[0]

    def split(self, segment: int, radius: float | None = None, min_points: int = SPLIT_MIN_POINTS) -> list[int]:
        """Split a segment into its 3D-connected parts; the largest keeps the id. Returns the new ids.

        Args:
            segment: the segment id.
            radius: neighbour distance; None = `SPLIT_SPACINGS` x the segment's
                median nearest-neighbour spacing (the value used is recorded).
            min_points: smaller parts join the part of their nearest kept neighbour.
        """
        rows = self.rows_of(segment)
        pts = self.gaussians.means[rows]
        if radius is None:
            radius = SPLIT_SPACINGS * median_spacing(pts)
        labels = connected_parts(pts, max(float(radius), 1e-12), min_points) if len(rows) else np.zeros(0, np.int64)
        first = self.next_segment_id()
        moved = labels > 0
        new_seg = (first + labels[moved] - 1).astype(np.int32)
        new_ids = sorted({int(i) for i in new_seg})
        base = self.name_of(segment)
        atoms = [Atom("rows", rows[moved], before={"segments": self.segments[rows[moved]].copy()},
                      after={"segments": new_seg}),
                 self._names_atom({i: f"{base} part {i - first + 2}" for i in new_ids})]
        self._record("Split", self._apply_all(atoms), {"op": "split", "segment": int(segment),
                                                       "radius": float(radius), "min_points": int(min_points)})
        return new_ids

    def rename(self, segment: int, name: str) -> None:
        if self.names.get(int(segment)) == name:
            return
        self._record("Rename", self._apply_all([self._names_atom({int(segment): str(name)})]),
                     {"op": "rename", "segment": int(segment), "name": str(name)})

    # ------------------------------------------------------------ grouping and drags
    @contextlib.contextmanager
    def group(self, name: str) -> Iterator[None]:
        """Merge every edit made inside the block into one undo step."""
        if self.history.open_group is not None:  # nested groups fold into the outer one
            yield
            return
        self.history.open_group = Step(name, [], [])
        try:
            yield
        finally:
            self.history.close_group()

    def begin_transform(self, rows) -> "TransformDrag":
        """Start a drag of the rows (see `TransformDrag`); one drag at a time."""
        if self.drag is not None:
            raise RuntimeError("a transform drag is already in progress")
        self.drag = TransformDrag(self, _rows(rows))
        return self.drag

    # ------------------------------------------------------------ history
    def undo(self) -> bool:
        if not self.history.undo_stack:
            return False
        step = self.history.undo_stack.pop()
        for atom in reversed(step.atoms):
            self._revert(atom)
        self.history.redo_stack.append(step)
        self._notify(_step_rows(step))
        return True

    def redo(self) -> bool:
        if not self.history.redo_stack:
            return False
        step = self.history.redo_stack.pop()
        for atom in step.atoms:
            self._apply(atom)
        self.history.undo_stack.append(step)
        self._notify(_step_rows(step))
        return True

    def replay(self, op_list: list[dict]) -> None:
        """Apply a list of operations (from `ops` of another session) in order.

        Raises:
            ValueError: an unknown operation or a row set that does not fit this model.
            KeyError: an operation without a field it needs.
        """
        from coseg.edit.replay import apply_op

        for op in op_list:
            apply_op(self, op)

    def target_rows(self, op: dict) -> np.ndarray:
        """The rows an operation acts on: its "rows" set, or the live rows of its "segments"."""
        if "rows" in op:
            return decode_rows(op["rows"], len(self.gaussians))
        return self.rows_of(op.get("segments", []))

    # ------------------------------------------------------------ internals
    def _row_target(self, rows: np.ndarray) -> dict:
        return {"rows": encode_rows(rows, len(self.gaussians))}

    def _rewrite(self, name: str, rows: np.ndarray, new: dict[str, np.ndarray], op: dict) -> None:
        before = {k: getattr(self.gaussians, k)[rows].copy() for k in new}
        self._record(name, self._apply_all([Atom("rows", rows, before=before, after=new)]), op)

    def _append_atom(self, part: Gaussians) -> Atom:
        n = len(self.gaussians)
        return Atom("append", np.arange(n, n + len(part)), appended=part)

    def _names_atom(self, names: dict[int, str]) -> Atom:
        return Atom("names", np.zeros(0, np.int64), before={k: self.names.get(k) for k in names}, after=dict(names))

    def _apply_all(self, atoms: list[Atom]) -> list[Atom]:
        for atom in atoms:
            self._apply(atom)
        return atoms

    def _apply(self, atom: Atom) -> None:
        self._set(atom, atom.after)

    def _revert(self, atom: Atom) -> None:
        if atom.kind == "append":
            keep = len(self.gaussians) - len(atom.appended)
            self.gaussians = self.gaussians.subset(np.arange(keep))
            self.deleted = self.deleted[:keep]
        else:
            self._set(atom, atom.before)

    def _set(self, atom: Atom, values: dict) -> None:
        if atom.kind == "rows":
            for k, v in values.items():
                getattr(self.gaussians, k)[atom.rows] = v
        elif atom.kind == "mask":
            self.deleted[atom.rows] = values["deleted"]
        elif atom.kind == "names":
            for k, v in values.items():
                if v is None:
                    self.names.pop(k, None)
                else:
                    self.names[k] = v
        else:
            self.gaussians = Gaussians.concatenate([self.gaussians, atom.appended])
            self.deleted = np.concatenate([self.deleted, np.zeros(len(atom.appended), bool)])

    def _record(self, name: str, atoms: list[Atom], op: dict) -> None:
        self.history.record(name, atoms, op)
        rows = np.concatenate([a.rows for a in atoms]) if atoms else np.zeros(0, np.int64)
        self._notify(rows)

    def _notify(self, rows: np.ndarray | None) -> None:
        self.changed.emit(rows)


class TransformDrag:
    """A transform being dragged: previews rewrite the rows unrecorded, `commit` is one undo step.

    Every preview and the commit start from the rows as they were when the
    drag began, so the committed step equals `EditDocument.transform_rows`
    with the final parameters (what replaying the project computes) bit for
    bit, and the history holds one step however long the drag. Previews
    leave the higher SH bands alone (the viewport draws degree 0); the
    commit rotates them.
    """

    def __init__(self, doc: EditDocument, rows: np.ndarray) -> None:
        self.doc = doc
        self.rows = rows
        g = doc.gaussians
        self._start = {k: getattr(g, k)[rows].copy() for k in _GEOMETRY}
        self.pivot = g.means[rows].astype(np.float64).mean(0) if len(rows) else np.zeros(3)

    def _restore(self) -> None:
        for k, v in self._start.items():
            getattr(self.doc.gaussians, k)[self.rows] = v

    def preview(self, rotation=(1.0, 0.0, 0.0, 0.0), scale: float = 1.0, translate=(0.0, 0.0, 0.0),
                pivot=None) -> None:
        """Show the rows transformed from their starting values (not recorded)."""
        self._restore()
        new = ops.transform(self.doc.gaussians, self.rows, self.pivot if pivot is None else pivot,
                            rotation, scale, translate, with_sh=False)
        for k, v in new.items():
            getattr(self.doc.gaussians, k)[self.rows] = v
        self.doc._notify(self.rows)

    def commit(self, rotation=(1.0, 0.0, 0.0, 0.0), scale: float = 1.0, translate=(0.0, 0.0, 0.0),
               pivot=None) -> None:
        """End the drag with one undo step (nothing when the transform is the identity)."""
        self._restore()
        self.doc.drag = None
        identity = (np.allclose(rotation, (1, 0, 0, 0)) and scale == 1.0 and not np.any(translate))
        if identity or not len(self.rows):
            self.doc._notify(self.rows)
            return
        self.doc.transform_rows(self.rows, self.pivot if pivot is None else pivot, rotation, scale, translate)

    def cancel(self) -> None:
        """End the drag leaving the rows as they were."""
        self._restore()
        self.doc.drag = None
        self.doc._notify(self.rows)


def _step_rows(step: Step) -> np.ndarray | None:
    """The rows an undo or redo of `step` changes; None (all) when it appended or removed rows."""
    if any(a.kind == "append" for a in step.atoms):
        return None
    rows = [a.rows for a in step.atoms if len(a.rows)]
    if not rows:
        return np.zeros(0, np.int64)
    return unique_rows(np.concatenate(rows), int(max(r.max() for r in rows)) + 1)


def _rows(rows) -> np.ndarray:
    rows = np.asarray(rows, np.int64).reshape(-1)
    return unique_rows(rows, int(rows.max()) + 1) if len(rows) else rows


def _ids(segment_ids) -> list[int]:
    return [int(s) for s in np.atleast_1d(np.asarray(segment_ids))]


def _seg_target(segment_ids) -> dict:
    return {"segments": _ids(segment_ids)}


def _floats(values) -> list[float]:
    return [float(v) for v in np.atleast_1d(np.asarray(values, np.float64))]
