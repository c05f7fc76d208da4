"""Edit commands of the studio: the selected segments moved, rotated, recoloured, duplicated, deleted.

Every command is one undo step of `coseg.edit.EditDocument` applied through
`StudioDocument.edit` (locked segments are skipped). A Ctrl+left drag in the
viewport moves the selection in the camera plane through the selection's
centre; the whole drag is one undo step (`EditDocument.group`). Hide,
isolate and show all are view state, not edits.
"""

from __future__ import annotations

import contextlib

import numpy as np
from PySide6.QtCore import QObject

from app.document import StudioDocument
from app.viewport.canvas import SplatCanvas


class EditController(QObject):
    """Runs edit commands on a document and the viewport's edit drags."""

    def __init__(self, doc: StudioDocument, canvas: SplatCanvas, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.canvas = canvas
        self._drag: contextlib.AbstractContextManager | None = None
        self._drag_depth = 1.0
        canvas.signals.edit_drag.connect(self.on_drag)

    # ------------------------------------------------------------ commands
    def delete(self) -> None:
        self.doc.edit(lambda e, ids: e.delete(ids))

    def move(self, delta) -> None:
        """Translate the selection by `delta` [3] world units."""
        delta = np.asarray(delta, np.float64)
        if np.any(delta != 0):
            self.doc.edit(lambda e, ids: e.translate(ids, delta))

    def move_axis_to(self, axis: int, value: float) -> None:
        """Move the selection so that its centre's coordinate `axis` becomes `value`."""
        rows = self.doc.selected_rows()
        if not len(rows):
            return
        delta = np.zeros(3)
        delta[axis] = float(value) - float(self.doc.gaussians.means[rows, axis].mean())
        self.move(delta)

    def rotate(self, degrees) -> None:
        """Rotate the selection about its centre by Euler angles (degrees about world x, y, z)."""
        degrees = np.asarray(degrees, np.float64)
        if np.any(degrees != 0):
            self.doc.edit(lambda e, ids: e.rotate(ids, degrees))

    def recolor(self, rgb) -> None:
        """Tint the selection to `rgb` [3] in [0, 1] (shading kept)."""
        self.doc.edit(lambda e, ids: e.recolor(ids, rgb))

    def duplicate(self, offset=None) -> list[int]:
        """Copy the selected segments beside themselves and select the copies."""
        new_ids = self.doc.edit(lambda e, ids: e.duplicate(ids, offset)) or []
        if new_ids:
            self.doc.select(new_ids)
        return new_ids

    def hide(self) -> None:
        self.doc.set_hidden(self.doc.selection, True)
        self.doc.select_none()

    def isolate(self) -> None:
        self.doc.isolate(self.doc.selection)

    def show_all(self) -> None:
        self.doc.set_hidden(list(self.doc.hidden), False)

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
        rows = self.doc.selected_rows()
        if self._drag is not None or not len(rows) or not self.doc.is_open:
            return False
        cam = self.canvas.camera
        self._drag_depth = max(float((self.doc.gaussians.means[rows].mean(0) - cam.position) @ cam.forward), 1e-3)
        self._drag = self.doc.edits.group("Move")
        self._drag.__enter__()
        return True

    def drag_by(self, dx: float, dy: float) -> None:
        """Move the selection by a mouse step, in the camera plane at the selection's depth."""
        if self._drag is None:
            return
        w, h = self.canvas.size
        fx, fy, _cx, _cy = self.canvas.camera.focal(w, h)
        rot = self.canvas.camera.rotation
        self.move(self._drag_depth * (dx / fx * rot[:, 0] + dy / fy * rot[:, 1]))

    def end_drag(self) -> None:
        if self._drag is None:
            return
        drag, self._drag = self._drag, None
        drag.__exit__(None, None, None)
        self.doc.history_changed.emit()
