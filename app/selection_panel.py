"""The selection panel: tool settings, volumes, filters, grow / shrink, and fixing segments by hand.

Compact sections in a `QToolBox` (one open at a time):

- Select: all / none / invert, grow / shrink by one neighbour radius
  (twice the median spacing of the model), the brush radius;
- Volume: a sphere (centre, radius) or an axis-aligned box (centre, half
  size) drawn in the viewport while the volume tool (O) is active; the
  centre can be taken from the view's target or the selection; Select /
  Add / Remove apply it;
- Filter: opacity and size (largest scale) ranges;
- Fix segments: assign the selection to the segment chosen in the list or
  to a new segment with a name. Merging and splitting are in the segments
  panel.

Every button that changes the selection or the model is disabled when it
cannot apply (no model, nothing selected).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtWidgets import (QComboBox, QDockWidget, QDoubleSpinBox, QFormLayout, QGridLayout, QHBoxLayout,
                               QLineEdit, QPushButton, QSizePolicy, QToolBox, QVBoxLayout, QWidget)

from coseg.edit import selection as sel
from coseg.edit.segments import median_spacing

if TYPE_CHECKING:
    from app.main_window import MainWindow

GROW_SPACINGS = 2.0
"""Grow / shrink radius in units of the model's median nearest-neighbour spacing."""


def _spin(lo: float, hi: float, value: float, decimals: int = 3, step: float = 0.05) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setButtonSymbols(QDoubleSpinBox.NoButtons)
    box.setMinimumWidth(50)
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setKeyboardTracking(False)
    return box


def _buttons(*pairs) -> tuple[QWidget, list[QPushButton]]:
    w = QWidget()
    lay = QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(3)
    made = []
    for text, slot in pairs:
        b = QPushButton(text)
        # Shrink with the dock instead of pushing it wider (a narrow panel keeps the viewport big).
        b.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        b.clicked.connect(lambda _c=False, slot=slot: slot())
        lay.addWidget(b)
        made.append(b)
    return w, made


def _how_buttons(apply) -> tuple[QWidget, list[QPushButton]]:
    """Select / Add / Remove buttons calling `apply(how)` with "replace", "add" or "remove"."""
    return _buttons(*((text, lambda how=how: apply(how))
                      for text, how in (("Select", "replace"), ("Add", "add"), ("Remove", "remove"))))


class SelectionPanel(QDockWidget):
    """Selection tools' settings and segment fixes (see module docstring)."""

    def __init__(self, win: "MainWindow", parent: QWidget | None = None) -> None:
        super().__init__("Selection", parent)
        self.setObjectName("selection_dock")
        self.setMaximumWidth(320)
        self.win = win
        self._spacing: float | None = None
        box = QToolBox()
        box.addItem(self._select_page(), "Select")
        box.addItem(self._volume_page(), "Volume (O)")
        box.addItem(self._filter_page(), "Filter")
        box.addItem(self._fix_page(), "Fix segments")
        self.toolbox = box
        self.setWidget(box)
        win.doc.selection_changed.connect(self.refresh)
        win.doc.model_changed.connect(self._model_changed)
        win.doc.segments_changed.connect(self._refresh_segments)
        self.refresh()

    # ------------------------------------------------------------ pages
    def _select_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        row, (self.all_button, self.none_button, self.invert_button) = _buttons(
            ("All", self.win.doc.select_all), ("None", self.win.doc.select_none),
            ("Invert", self.win.doc.invert_selection))
        form.addRow(row)
        row, (self.grow_button, self.shrink_button) = _buttons(("Grow", lambda: self.grow(True)),
                                                               ("Shrink", lambda: self.grow(False)))
        form.addRow(row)
        self.brush = _spin(2, 400, self.win.tools.brush_radius, 0, 2)
        self.brush.valueChanged.connect(lambda v: setattr(self.win.tools, "brush_radius", float(v)))
        form.addRow("Brush radius (px)", self.brush)
        return page

    def _volume_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.shape = QComboBox()
        self.shape.addItems(["sphere", "box"])
        self.shape.currentTextChanged.connect(self._volume_edited)
        form.addRow("Shape", self.shape)
        self.centre = [_spin(-1e5, 1e5, 0.0) for _ in range(3)]
        grid = QWidget()
        lay = QGridLayout(grid)
        lay.setContentsMargins(0, 0, 0, 0)
        for i, b in enumerate(self.centre):
            lay.addWidget(b, 0, i)
            b.valueChanged.connect(self._volume_edited)
        form.addRow("Centre", grid)
        row, (self.from_view, self.from_selection) = _buttons(("From view", self._centre_from_view),
                                                              ("From selection", self._centre_from_selection))
        form.addRow(row)
        self.radius = _spin(1e-4, 1e5, 0.5)
        self.radius.valueChanged.connect(self._volume_edited)
        form.addRow("Radius / half size", self.radius)
        row, self.volume_buttons = _how_buttons(self.win.tools.select_volume)
        form.addRow(row)
        return page

    def _filter_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.opacity = (_spin(0, 1, 0.0, 3, 0.05), _spin(0, 1, 0.1, 3, 0.05))
        form.addRow("Opacity from / to", _pair(*self.opacity))
        row, self.opacity_buttons = _how_buttons(lambda how: self.filter("opacity", how))
        form.addRow(row)
        self.size = (_spin(0, 1e5, 0.0, 4, 0.01), _spin(0, 1e5, 0.05, 4, 0.01))
        form.addRow("Size from / to", _pair(*self.size))
        row, self.size_buttons = _how_buttons(lambda how: self.filter("size", how))
        form.addRow(row)
        return page

    def _fix_page(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        self.target = QComboBox()
        lay.addWidget(self.target)
        self.assign_button = QPushButton("Assign selection to it")
        self.assign_button.clicked.connect(self.assign_to_chosen)
        lay.addWidget(self.assign_button)
        self.new_name = QLineEdit()
        self.new_name.setPlaceholderText("new segment name")
        lay.addWidget(self.new_name)
        self.new_button = QPushButton("New segment from selection")
        self.new_button.clicked.connect(self.assign_to_new)
        lay.addWidget(self.new_button)
        lay.addStretch(1)
        return page

    # ------------------------------------------------------------ actions
    def spacing(self) -> float:
        """The model's median nearest-neighbour spacing (cached per model)."""
        if self._spacing is None:
            doc = self.win.doc
            self._spacing = median_spacing(doc.gaussians.means[doc.visible_mask()])
        return self._spacing

    def grow(self, grow: bool) -> None:
        doc = self.win.doc
        if not doc.has_selection:
            return
        radius = GROW_SPACINGS * self.spacing()
        fn = sel.grow if grow else sel.shrink
        doc.state.set_selection(fn(doc.gaussians.means, doc.state.selection, radius, doc.visible_mask()))

    def filter(self, kind: str, how: str) -> None:
        doc = self.win.doc
        if not doc.is_open:
            return
        g = doc.gaussians
        if kind == "opacity":
            picked = sel.by_opacity(g.opacities, self.opacity[0].value(), self.opacity[1].value())
        else:
            picked = sel.by_size(g.log_scales, self.size[0].value(), self.size[1].value())
        doc.state.apply(picked, how)

    def assign_to_chosen(self) -> None:
        sid = self.target.currentData()
        if sid is not None:
            self.win.editor.assign(int(sid))

    def assign_to_new(self) -> None:
        name = self.new_name.text().strip() or None
        new = self.win.editor.assign(None, name)
        if new is not None:
            self.new_name.clear()

    def _centre_from_view(self) -> None:
        self._set_centre(self.win.canvas.camera.target)

    def _centre_from_selection(self) -> None:
        rows = self.win.doc.selected_rows()
        if len(rows):
            self._set_centre(self.win.doc.gaussians.means[rows].mean(0))

    def _set_centre(self, c) -> None:
        for box, v in zip(self.centre, c):
            box.setValue(float(v))

    def _volume_edited(self, *_args) -> None:
        v = self.win.tools.volume
        v["shape"] = self.shape.currentText()
        v["centre"] = np.array([b.value() for b in self.centre])
        v["radius"] = self.radius.value()
        v["half"] = np.full(3, self.radius.value())
        self.win.canvas.update()

    # ------------------------------------------------------------ display
    def _model_changed(self) -> None:
        self._spacing = None
        doc = self.win.doc
        if doc.is_open and len(doc.gaussians):
            lo, hi = np.percentile(doc.gaussians.means, [5, 95], axis=0)
            self._set_centre((lo + hi) / 2)
            self.radius.setValue(float(np.max(hi - lo) / 4) or 0.5)
        self._refresh_segments()
        self.refresh()

    def _refresh_segments(self) -> None:
        doc = self.win.doc
        current = self.target.currentData()
        self.target.blockSignals(True)
        self.target.clear()
        for sid in (doc.segment_ids() if doc.is_open else []):
            self.target.addItem(f"{sid}  {doc.name_of(sid)}", sid)
        if current is not None and self.target.findData(current) >= 0:
            self.target.setCurrentIndex(self.target.findData(current))
        self.target.blockSignals(False)
        self.refresh()

    def refresh(self) -> None:
        doc = self.win.doc
        is_open, selected = doc.is_open, doc.has_selection
        for w in (self.all_button, self.none_button, self.invert_button, *self.volume_buttons,
                  *self.opacity_buttons, *self.size_buttons, self.from_view):
            w.setEnabled(is_open)
        for w in (self.grow_button, self.shrink_button, self.from_selection, self.new_button):
            w.setEnabled(selected)
        self.assign_button.setEnabled(selected and self.target.count() > 0)


def _pair(a: QWidget, b: QWidget) -> QWidget:
    w = QWidget()
    lay = QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(a)
    lay.addWidget(b)
    return w
