"""The segments panel (the properties panel is `app.properties`, the selection tools `app.selection_panel`).

One compact row per segment: show and lock check boxes, the id on its
palette colour, the editable name (double-click; a rename is an undoable
edit), live and selected Gaussian counts. Selecting rows selects those
segments' splats; a splat selection made in the viewport selects the rows
of every segment it touches. Below the table: Merge (the chosen segments
into the first) and Split (a segment into its 3D-connected parts).
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QDockWidget, QHBoxLayout, QHeaderView, QMainWindow, QPushButton,
                               QStyle, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from app.document import StudioDocument
from app.editing import EditController
from app.palette import color_hex

COL_VISIBLE, COL_LOCKED, COL_ID, COL_NAME, COL_COUNT, COL_SELECTED = range(6)
MAX_WIDTH = 360
"""The dock never widens itself past this many pixels..."""
MAX_WINDOW_FRACTION = 0.3
"""...nor past this fraction of the window (the viewport keeps the rest)."""


class SegmentsPanel(QDockWidget):
    """Segments: visibility and lock toggles, id with colour swatch, editable name, count.

    Selecting rows selects segments in the document (and the other way round).
    """

    def __init__(self, doc: StudioDocument, editor: EditController, parent: QWidget | None = None) -> None:
        super().__init__("Segments", parent)
        self.setObjectName("segments_dock")
        self.setMinimumWidth(230)
        self.setMaximumWidth(MAX_WIDTH)
        self.doc = doc
        self.editor = editor
        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(["", "", "Id", "Name", "Count", "Sel"])
        self.table.horizontalHeaderItem(COL_VISIBLE).setToolTip("shown")
        self.table.horizontalHeaderItem(COL_LOCKED).setToolTip("locked (edits skip it)")
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(20)
        header = self.table.horizontalHeader()
        # Sized once per refresh (ResizeToContents would re-measure every column at every cell change).
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setSectionResizeMode(COL_NAME, QHeaderView.Stretch)
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.table)
        row = QHBoxLayout()
        self.merge_button = QPushButton("Merge")
        self.merge_button.setToolTip("merge the chosen segments into the first")
        self.merge_button.clicked.connect(lambda: self.editor.merge(self.chosen()))
        self.split_button = QPushButton("Split")
        self.split_button.setToolTip("split the chosen segment into its 3D-connected parts")
        self.split_button.clicked.connect(lambda: self.editor.split(self.chosen()[0]) if self.chosen() else None)
        row.addWidget(self.merge_button)
        row.addWidget(self.split_button)
        lay.addLayout(row)
        self.setWidget(body)
        self._ids: list[int] = []
        self._fitted = 0
        doc.segments_changed.connect(self.refresh)
        doc.selection_changed.connect(self._sync_selection)
        self.table.itemSelectionChanged.connect(self._selection_from_table)
        self.table.itemChanged.connect(self._item_changed)

    def refresh(self) -> None:
        """Show the document's segments: rows made when the segment list changed, else updated in place."""
        with QSignalBlocker(self.table):
            ids = self.doc.segment_ids() if self.doc.is_open else []
            counts = self.doc.segment_counts() if self.doc.is_open else {}
            hidden, locked = self.doc.hidden, self.doc.locked
            # An assign or a delete changes counts, not the list: updating the cells costs a fraction of
            # making 6 items per row again.
            if ids != self._ids or self.table.rowCount() != len(ids):
                self._ids = ids
                self.table.setRowCount(len(ids))
                for row, sid in enumerate(ids):
                    self._make_row(row, sid)
            for row, sid in enumerate(ids):
                for col, checked in ((COL_VISIBLE, sid not in hidden), (COL_LOCKED, sid in locked)):
                    state = Qt.Checked if checked else Qt.Unchecked
                    if self.table.item(row, col).checkState() != state:
                        self.table.item(row, col).setCheckState(state)
                name = self.doc.name_of(sid)
                if self.table.item(row, COL_NAME).text() != name:
                    self.table.item(row, COL_NAME).setText(name)
                    self.table.item(row, COL_NAME).setToolTip(name)  # in full, should it not fit the widest dock
                count = f"{counts.get(sid, 0):,}"
                if self.table.item(row, COL_COUNT).text() != count:
                    self.table.item(row, COL_COUNT).setText(count)
            for col in (COL_VISIBLE, COL_LOCKED, COL_ID, COL_COUNT):
                self.table.resizeColumnToContents(col)
            self.table.setColumnWidth(COL_SELECTED, self.table.columnWidth(COL_COUNT))
        self.fit_width()
        self._sync_selection()

    def _make_row(self, row: int, sid: int) -> None:
        """The items of one segment's row (texts and check states are `refresh`'s)."""
        for col in (COL_VISIBLE, COL_LOCKED):
            item = QTableWidgetItem()
            item.setFlags(Qt.ItemIsUserCheckable | Qt.ItemIsEnabled | Qt.ItemIsSelectable)
            item.setCheckState(Qt.Unchecked)
            self.table.setItem(row, col, item)
        swatch = QTableWidgetItem(f"{sid}")
        swatch.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable)
        swatch.setBackground(QColor(color_hex(sid)))
        self.table.setItem(row, COL_ID, swatch)
        name = QTableWidgetItem("")
        name.setFlags(Qt.ItemIsEditable | Qt.ItemIsEnabled | Qt.ItemIsSelectable)
        self.table.setItem(row, COL_NAME, name)
        for col in (COL_COUNT, COL_SELECTED):
            item = QTableWidgetItem("")
            item.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable)
            item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            self.table.setItem(row, col, item)

    def needed_width(self) -> int:
        """Dock width at which every column shows its widest text unclipped (the names in full).

        The fixed columns are sized to their contents; the name column
        stretches, so the dock must hold the name column's own size hint on
        top of them, plus everything around the table's viewport and room
        for a vertical scroll bar (which appears once the rows outgrow the
        dock and would otherwise eat into the names).
        """
        t = self.table
        columns = sum(t.columnWidth(c) for c in range(t.columnCount()) if c != COL_NAME)
        name = max(t.sizeHintForColumn(COL_NAME), t.horizontalHeader().sectionSizeHint(COL_NAME))
        scroll = 0 if t.verticalScrollBar().isVisible() else t.style().pixelMetric(QStyle.PM_ScrollBarExtent)
        return columns + name + scroll + self.width() - t.viewport().width()

    def fit_width(self) -> None:
        """Widen the dock when its contents grew past what it shows (never narrower, so a user's width stays).

        Bounded by `MAX_WIDTH` and `MAX_WINDOW_FRACTION` of the main
        window; a dock that is hidden or floats is left alone.
        """
        window = self.parentWidget()
        if not self.isVisible() or self.isFloating() or not isinstance(window, QMainWindow):
            return
        need = self.needed_width()
        if need <= self._fitted or need <= self.width():
            return
        self._fitted = need
        width = min(need, MAX_WIDTH, max(self.minimumWidth(), int(MAX_WINDOW_FRACTION * window.width())))
        if width > self.width():
            window.resizeDocks([self], [width], Qt.Horizontal)

    def chosen(self) -> list[int]:
        """Segment ids of the selected table rows, in table order."""
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self._ids[r] for r in rows]

    def _sync_selection(self) -> None:
        per = self.doc.state.selected_per_segment() if self.doc.is_open else {}
        with QSignalBlocker(self.table):
            for row, sid in enumerate(self._ids):
                item = self.table.item(row, COL_SELECTED)
                if item is not None:
                    item.setText(f"{per[sid]:,}" if sid in per else "")
            self.table.clearSelection()
            model = self.table.selectionModel()
            for row, sid in enumerate(self._ids):
                if sid in per:
                    model.select(self.table.model().index(row, 0),
                                 model.SelectionFlag.Select | model.SelectionFlag.Rows)
        self._refresh_buttons()

    def _refresh_buttons(self) -> None:
        chosen = self.chosen() if self.doc.is_open else []
        self.merge_button.setEnabled(len(chosen) > 1)
        self.split_button.setEnabled(len(chosen) == 1)

    def _selection_from_table(self) -> None:
        self.doc.select(self.chosen())
        self._refresh_buttons()

    def _item_changed(self, item: QTableWidgetItem) -> None:
        sid = self._ids[item.row()]
        if item.column() == COL_VISIBLE:
            self.doc.set_hidden([sid], item.checkState() != Qt.Checked)
        elif item.column() == COL_LOCKED:
            self.doc.set_locked([sid], item.checkState() == Qt.Checked)
        elif item.column() == COL_NAME:
            self.doc.rename(sid, item.text())
