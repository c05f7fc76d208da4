"""The properties panel: what is selected, and the edits typed into it.

Position shows the selection's centre; typing a coordinate (Enter or leaving
the field) moves the selection so its centre gets that value. "Rotate by"
takes Euler angles in degrees about the world x, y, z axes and the Rotate
button turns the selection about its centre. The colour button opens a colour
picker and recolours the selection (shading kept). Duplicate copies the
selection beside itself. Each of these is one undo step.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QColorDialog, QDockWidget, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel,
                               QPushButton, QWidget)

from app.document import StudioDocument
from app.editing import EditController
from coseg.gaussians import sh_dc_to_rgb

DECIMALS = 4


def _spin(lo: float, hi: float, decimals: int, suffix: str = "") -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSuffix(suffix)
    box.setKeyboardTracking(False)
    return box


def _row(*widgets) -> QWidget:
    w = QWidget()
    lay = QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    for x in widgets:
        lay.addWidget(x)
    return w


class PropertiesPanel(QDockWidget):
    """Selection properties with editable position, rotation and colour (see module docstring)."""

    def __init__(self, doc: StudioDocument, editor: EditController, parent: QWidget | None = None) -> None:
        super().__init__("Properties", parent)
        self.setObjectName("properties_dock")
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
        self.angles = [_spin(-360.0, 360.0, 2, "°") for _ in range(3)]
        self.rotate_button = QPushButton("Rotate")
        self.rotate_button.clicked.connect(self.apply_rotation)
        form.addRow("Rotate by", _row(*self.angles, self.rotate_button))
        form.addRow("Rotations", self.fields["rotations"])
        self.color_button = QPushButton("")
        self.color_button.clicked.connect(self.pick_color)
        form.addRow("Colour", self.color_button)
        self.duplicate_button = QPushButton("Duplicate")
        self.duplicate_button.clicked.connect(lambda: self.editor.duplicate())
        form.addRow("", self.duplicate_button)
        self.setWidget(body)
        self._editable = [*self.position, *self.angles, self.rotate_button, self.color_button, self.duplicate_button]
        doc.selection_changed.connect(self.refresh)
        doc.segments_changed.connect(self.refresh)
        self.refresh()

    # ------------------------------------------------------------ edits
    def _position_edited(self, axis: int) -> None:
        rows = self.doc.selected_rows() if self.doc.is_open else np.zeros(0, np.int64)
        if not len(rows):
            return
        value = self.position[axis].value()
        current = float(self.doc.gaussians.means[rows, axis].mean())
        if round(current, DECIMALS) != round(value, DECIMALS):
            self.editor.move_axis_to(axis, value)

    def apply_rotation(self) -> None:
        """Rotate the selection by the typed angles, then reset them to 0."""
        self.editor.rotate([box.value() for box in self.angles])
        for box in self.angles:
            box.setValue(0.0)

    def pick_color(self) -> None:
        color = QColorDialog.getColor(QColor(self.color_button.text() or "#808080"), self, "Recolour selection")
        if color.isValid():
            self.editor.recolor([color.redF(), color.greenF(), color.blueF()])

    # ------------------------------------------------------------ display
    def refresh(self) -> None:
        rows = self.doc.selected_rows() if self.doc.is_open else np.zeros(0, np.int64)
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
        means = g.means[rows]
        centre = means.mean(0)
        for box, v in zip(self.position, centre):
            with QSignalBlocker(box):
                box.setValue(float(v))
        size = means.max(0) - means.min(0)
        rgb = np.clip(sh_dc_to_rgb(g.sh_dc[rows]).mean(0), 0, 1)
        self.fields["segments"].setText(", ".join(f"{i} {self.doc.name_of(i)}" for i in sorted(self.doc.selection)))
        self.fields["gaussians"].setText(f"{len(rows):,}")
        self.fields["size"].setText("  ".join(f"{v:.3f}" for v in size))
        self.fields["rotations"].setText(self._rotations())
        hexcol = "#%02x%02x%02x" % tuple(int(round(c * 255)) for c in rgb)
        self.color_button.setText(hexcol)
        text = "#000000" if rgb @ np.array([0.299, 0.587, 0.114]) > 0.5 else "#ffffff"
        self.color_button.setStyleSheet(f"background: {hexcol}; color: {text}")

    def _rotations(self) -> str:
        """The rotate edits applied to the selected segments since loading."""
        sel = self.doc.selection
        turns = [op["degrees"] for op in self.doc.edits.ops
                 if op.get("op") == "rotate" and sel & set(op.get("segments", []))]
        if not turns:
            return "as loaded"
        return "; ".join(" ".join(f"{v:g}" for v in t) + "°" for t in turns)
