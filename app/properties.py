"""The properties panel: what is selected, and the edits typed into it (the gizmo's numeric twin).

Position shows the selection's centre; typing a coordinate (Enter or leaving
the field) moves the selection so its centre gets that value. "Rotate by"
takes Euler angles in degrees about the world x, y, z axes and the Rotate
button turns the selection about its centre; "Scale by" scales positions
and splats uniformly about it. The colour button opens a colour picker and
recolours the selection (shading kept); after a recolour it shows the
colour that was chosen for exactly these splats (the mean colour of tinted
splats is not the target: their shading varies). Duplicate copies the
selection beside itself. Each of these is one undo step.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractSpinBox, QColorDialog, QDockWidget, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel,
                               QPushButton, QWidget)

from app.document import StudioDocument
from app.editing import EditController
from coseg.edit.selection import row_stats
from coseg.gaussians import sh_dc_to_rgb

DECIMALS = 4
RECOLOR_LOOKBACK = 20
"""Edits searched back for the recolour that gave the selection its colour."""


def _spin(lo: float, hi: float, decimals: int, suffix: str = "", sample: float = -10.0) -> QDoubleSpinBox:
    """A compact spin box at least as wide as `sample` written with its decimals and suffix."""
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSuffix(suffix)
    box.setKeyboardTracking(False)
    # Compact: no arrows (the wheel and the keyboard still step), three in a row; wide enough that a
    # typical value (a working-frame coordinate such as -10.0000) is not clipped.
    box.setButtonSymbols(QAbstractSpinBox.NoButtons)
    box.setMinimumWidth(box.fontMetrics().horizontalAdvance(box.textFromValue(sample) + suffix) + 2 * SPIN_MARGIN)
    return box


SPIN_MARGIN = 6
"""Pixels a spin box's frame and text margin take on each side of its text (Fusion and Windows styles: 4-5)."""


def _row(*widgets) -> QWidget:
    w = QWidget()
    lay = QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(3)
    for x in widgets:
        lay.addWidget(x)
    return w


class PropertiesPanel(QDockWidget):
    """Selection properties with editable position, rotation and colour (see module docstring)."""

    def __init__(self, doc: StudioDocument, editor: EditController, parent: QWidget | None = None) -> None:
        super().__init__("Properties", parent)
        self.setObjectName("properties_dock")
        self.setMaximumWidth(300)  # the viewport gets the room
        self.doc = doc
        self.editor = editor
        body = QWidget()
        form = QFormLayout(body)
        self.fields = {k: QLabel("-") for k in ("segments", "gaussians", "size", "rotations")}
        for label in self.fields.values():
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            label.setWordWrap(True)
        form.addRow("Segments", self.fields["segments"])
        form.addRow("Gaussians", self.fields["gaussians"])
        self.position = [_spin(-1e6, 1e6, DECIMALS) for _ in range(3)]
        for axis, box in enumerate(self.position):
            box.editingFinished.connect(lambda axis=axis: self._position_edited(axis))
        form.addRow("Position", _row(*self.position))
        form.addRow("Size", self.fields["size"])
        self.angles = [_spin(-360.0, 360.0, 2, "°", sample=-180.0) for _ in range(3)]
        self.rotate_button = QPushButton("Rotate")
        self.rotate_button.clicked.connect(self.apply_rotation)
        form.addRow("Rotate by", _row(*self.angles))
        form.addRow("", self.rotate_button)
        self.factor = _spin(0.01, 100.0, 3)
        self.factor.setValue(1.0)
        self.factor.setSingleStep(0.1)
        self.scale_button = QPushButton("Scale")
        self.scale_button.clicked.connect(self.apply_scale)
        form.addRow("Scale by", _row(self.factor, self.scale_button))
        form.addRow("Rotations", self.fields["rotations"])
        self.color_button = QPushButton("")
        self.color_button.clicked.connect(self.pick_color)
        form.addRow("Colour", self.color_button)
        self.duplicate_button = QPushButton("Duplicate")
        self.duplicate_button.clicked.connect(lambda: self.editor.duplicate())
        form.addRow("", self.duplicate_button)
        self.setWidget(body)
        self._editable = [*self.position, *self.angles, self.rotate_button, self.factor, self.scale_button,
                          self.color_button, self.duplicate_button]
        # Selection (locks included: they change what is editable), and every recorded step (a drag's
        # commit, a rename) - once per action, not on every preview or panel update.
        doc.selection_changed.connect(self.refresh)
        doc.history_changed.connect(self.refresh)
        doc.model_changed.connect(self.refresh)
        self.refresh()

    # ------------------------------------------------------------ edits
    def _position_edited(self, axis: int) -> None:
        rows = self.doc.editable_rows()
        if not len(rows):
            return
        value = self.position[axis].value()
        current = float(row_stats(self.doc.gaussians.means, rows)[0][axis])  # the centre `refresh` shows
        if round(current, DECIMALS) != round(value, DECIMALS):
            self.editor.move_axis_to(axis, value)

    def apply_rotation(self) -> None:
        """Rotate the selection by the typed angles, then reset them to 0."""
        self.editor.rotate([box.value() for box in self.angles])
        for box in self.angles:
            box.setValue(0.0)

    def apply_scale(self) -> None:
        """Scale the selection by the typed factor, then reset it to 1."""
        self.editor.scale(self.factor.value())
        self.factor.setValue(1.0)

    def pick_color(self) -> None:
        if not len(self.doc.editable_rows()):
            return
        color = QColorDialog.getColor(QColor(self.color_button.text() or "#808080"), self, "Recolour selection")
        if color.isValid():
            self.editor.recolor([color.red() / 255.0, color.green() / 255.0, color.blue() / 255.0])

    # ------------------------------------------------------------ display
    def refresh(self) -> None:
        rows = self.doc.editable_rows()
        for w in self._editable:
            w.setEnabled(bool(len(rows)))
        if not len(rows):
            for label in self.fields.values():
                label.setText("-")
            self.fields["segments"].setText("nothing selected")
            self.color_button.setText("")
            self.color_button.setStyleSheet("")
            return
        g = self.doc.gaussians
        # One pass over the selected rows each (a lasso selects ~all of 200k: no gathered copies).
        centre, lo, hi = row_stats(g.means, rows)
        for box, v in zip(self.position, centre):
            with QSignalBlocker(box):
                box.setValue(float(v))
        size = hi - lo
        rgb = self._chosen_color(rows)
        if rgb is None:  # the mean colour: the colour of the mean DC coefficient (the map is affine)
            rgb = np.clip(sh_dc_to_rgb(row_stats(g.sh_dc, rows)[0]), 0, 1)
        self.fields["segments"].setText(", ".join(f"{i} {self.doc.name_of(i)}" for i in sorted(self.doc.selection)))
        self.fields["gaussians"].setText(f"{len(rows):,}")
        self.fields["size"].setText("  ".join(f"{v:.3f}" for v in size))
        self.fields["rotations"].setText(self._rotations())
        hexcol = "#%02x%02x%02x" % tuple(int(round(c * 255)) for c in rgb)
        self.color_button.setText(hexcol)
        text = "#000000" if rgb @ np.array([0.299, 0.587, 0.114]) > 0.5 else "#ffffff"
        self.color_button.setStyleSheet(f"background: {hexcol}; color: {text}")

    def _chosen_color(self, rows: np.ndarray) -> np.ndarray | None:
        """The colour of the newest recolour whose targets are exactly `rows`, if it is the last change to them."""
        mine = np.zeros(len(self.doc.edits), bool)
        mine[rows] = True
        for op in reversed(self.doc.edits.ops[-RECOLOR_LOOKBACK:]):
            if op.get("op") in ("merge", "split", "rename", "assign"):
                continue  # segment labels and names do not change colours
            touched = self.doc.edits.target_rows(op)
            if not mine[touched].any():
                continue
            if op["op"] == "recolor" and len(touched) == len(rows) and mine[touched].all():
                return np.asarray(op["rgb"], np.float64)
            return None
        return None

    def _rotations(self) -> str:
        """The rotate edits applied to the selected segments since loading."""
        sel = self.doc.selection
        turns = [op["degrees"] for op in self.doc.edits.ops
                 if op.get("op") == "rotate" and sel & set(self.doc.edits.segments[self.doc.edits.target_rows(op)]
                                                          .tolist())]
        if not turns:
            return "as loaded"
        return "; ".join(" ".join(f"{v:g}" for v in t) + "°" for t in turns)
