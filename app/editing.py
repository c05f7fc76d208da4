"""Edit commands of the studio on the selected splats, and the segment fixes.

Every command is one undo step of `coseg.edit.EditDocument` applied through
`StudioDocument.edit_rows` (locked segments are skipped): delete, move,
rotate, scale, recolour, duplicate, assign the selection to a segment (an
existing or a new one), merge segments, split a segment into its
3D-connected parts, rename. A Ctrl+left drag in the viewport moves the
selection in the camera plane through its centre as one transform drag
(`EditDocument.begin_transform`: previews unrecorded, one step at the end).
Hide, isolate and show all are view state, not edits.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject

from app.document import StudioDocument
from app.viewport.canvas import SplatCanvas
from coseg.edit import ops
from coseg.edit.selection import row_stats


class EditController(QObject):
    """Runs edit commands on a document and the viewport's edit drags."""

    def __init__(self, doc: StudioDocument, canvas: SplatCanvas, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.canvas = canvas
        self._drag = None
        self._drag_depth = 1.0
        self._drag_total = np.zeros(3)
        canvas.signals.edit_drag.connect(self.on_drag)

    # ------------------------------------------------------------ commands on the selection
    def delete(self) -> None:
        self.doc.edit_rows(lambda e, rows: e.delete_rows(rows))

    def move(self, delta) -> None:
        """Translate the selection by `delta` [3] world units."""
        delta = np.asarray(delta, np.float64)
        if np.any(delta != 0):
            self.doc.edit_rows(lambda e, rows: e.translate_rows(rows, delta))

    def move_axis_to(self, axis: int, value: float) -> None:
        """Move the selection so that its centre's coordinate `axis` becomes `value`."""
        rows = self.doc.editable_rows()
        if not len(rows):
            return
        delta = np.zeros(3)
        delta[axis] = float(value) - float(row_stats(self.doc.gaussians.means, rows)[0][axis])
        self.move(delta)

    def rotate(self, degrees) -> None:
        """Rotate the selection about its centre by Euler angles (degrees about world x, y, z)."""
        degrees = np.asarray(degrees, np.float64)
        if np.any(degrees != 0):
            self.doc.edit_rows(lambda e, rows: e.rotate_rows(rows, degrees))

    def scale(self, factor: float) -> None:
        """Scale the selection's positions and splats uniformly about its centre."""
        if factor > 0 and factor != 1.0:
            self.doc.edit_rows(lambda e, rows: e.transform_rows(
                rows, e.gaussians.means[rows].astype(np.float64).mean(0), scale=float(factor)))

    def recolor(self, rgb) -> None:
        """Tint the selection to `rgb` [3] in [0, 1] (shading kept)."""
        self.doc.edit_rows(lambda e, rows: e.recolor_rows(rows, rgb))

    def duplicate(self, offset=None) -> list[int]:
        """Copy the selection beside itself on screen (along the camera's right axis) and select the copies.

        Each source segment's copies become a new segment named "<name> copy".
        """
        def run(e, rows):
            off = offset if offset is not None else ops.default_duplicate_offset(
                e.gaussians, rows, self.canvas.camera.rotation[:, 0])
            return e.duplicate_rows(rows, off)

        new_ids = self.doc.edit_rows(run) or []
        if new_ids:
            self.doc.select(new_ids)
        return new_ids

    def assign(self, segment: int | None, name: str | None = None) -> int | None:
        """Give the selected splats segment `segment`, or a new segment named `name`; returns its id."""
        return self.doc.edit_rows(lambda e, rows: e.assign(rows, segment, name))

    # ------------------------------------------------------------ segment fixes
    def merge(self, ids) -> int | None:
        """Merge the segments into the first (locked segments are left out)."""
        ids = [int(i) for i in ids if int(i) not in self.doc.locked]
        return self.doc.edits.merge(ids) if len(ids) > 1 else None

    def split(self, segment: int) -> list[int]:
        """Split a segment into its 3D-connected parts (nothing for a locked one)."""
        if segment in self.doc.locked or not self.doc.is_open:
            return []
        return self.doc.edits.split(int(segment))

    # ------------------------------------------------------------ view state
    def hide(self) -> None:
        self.doc.state.hide_selection()

    def isolate(self) -> None:
        self.doc.state.isolate_selection()

    def show_all(self) -> None:
        self.doc.state.show_all()

    # ------------------------------------------------------------ viewport drag
    def on_drag(self, phase: str, dx: float, dy: float) -> None:
        """Ctrl+drag in the viewport: phase "start" | "move" | "end", dx, dy in logical pixels."""
        if phase == "start":
            self.begin_drag()
        elif phase == "move":
            self.drag_by(dx, dy)
        else:
            self.end_drag()

    def begin_drag(self) -> bool:
        rows = self.doc.editable_rows()
        if self._drag is not None or not len(rows) or not self.doc.is_open:
            return False
        cam = self.canvas.camera
        self._drag_depth = max(float((self.doc.gaussians.means[rows].mean(0) - cam.position) @ cam.forward), 1e-3)
        self._drag_total = np.zeros(3)
        self._drag = self.doc.edits.begin_transform(rows)
        return True

    def drag_by(self, dx: float, dy: float) -> None:
        """Move the selection by a mouse step, in the camera plane at the selection's depth."""
        if self._drag is None:
            return
        w, h = self.canvas.size
        fx, fy, _cx, _cy = self.canvas.camera.focal(w, h)
        rot = self.canvas.camera.rotation
        self._drag_total = self._drag_total + self._drag_depth * (dx / fx * rot[:, 0] + dy / fy * rot[:, 1])
        self._drag.preview(translate=self._drag_total)

    def end_drag(self) -> None:
        if self._drag is None:
            return
        drag, self._drag = self._drag, None
        drag.commit(translate=self._drag_total)
