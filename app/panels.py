"""The segments panel (the properties panel is `app.properties`)."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QDockWidget, QTableWidget, QTableWidgetItem, QWidget)

from app.document import StudioDocument
from app.palette import color_hex

COL_VISIBLE, COL_LOCKED, COL_ID, COL_NAME, COL_COUNT = range(5)


class SegmentsPanel(QDockWidget):
    """Segments: visibility and lock toggles, id with colour swatch, editable name, count.

    Selecting rows selects segments in the document (and the other way round).
    """

    def __init__(self, doc: StudioDocument, parent: QWidget | None = None) -> None:
        super().__init__("Segments", parent)
        self.setObjectName("segments_dock")
        self.doc = doc
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Show", "Lock", "Id", "Name", "Gaussians"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.setWidget(self.table)
        self._ids: list[int] = []
        doc.segments_changed.connect(self.refresh)
        doc.selection_changed.connect(self._sync_selection)
        self.table.itemSelectionChanged.connect(self._selection_from_table)
        self.table.itemChanged.connect(self._item_changed)

    def refresh(self) -> None:
        with QSignalBlocker(self.table):
            self._ids = self.doc.segment_ids() if self.doc.is_open else []
            counts = self.doc.segment_counts() if self.doc.is_open else {}
            self.table.setRowCount(len(self._ids))
            for row, sid in enumerate(self._ids):
                for col, checked in ((COL_VISIBLE, sid not in self.doc.hidden), (COL_LOCKED, sid in self.doc.locked)):
                    item = QTableWidgetItem()
                    item.setFlags(Qt.ItemIsUserCheckable | Qt.ItemIsEnabled | Qt.ItemIsSelectable)
                    item.setCheckState(Qt.Checked if checked else Qt.Unchecked)
                    self.table.setItem(row, col, item)
                swatch = QTableWidgetItem(f"{sid}")
                swatch.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable)
                swatch.setBackground(QColor(color_hex(sid)))
                self.table.setItem(row, COL_ID, swatch)
                name = QTableWidgetItem(self.doc.name_of(sid))
                name.setFlags(Qt.ItemIsEditable | Qt.ItemIsEnabled | Qt.ItemIsSelectable)
                self.table.setItem(row, COL_NAME, name)
                count = QTableWidgetItem(f"{counts.get(sid, 0):,}")
                count.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable)
                count.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(row, COL_COUNT, count)
            self.table.resizeColumnsToContents()
        self._sync_selection()

    def _sync_selection(self) -> None:
        with QSignalBlocker(self.table):
            self.table.clearSelection()
            model = self.table.selectionModel()
            for row, sid in enumerate(self._ids):
                if sid in self.doc.selection:
                    model.select(self.table.model().index(row, 0),
                                 model.SelectionFlag.Select | model.SelectionFlag.Rows)

    def _selection_from_table(self) -> None:
        rows = {i.row() for i in self.table.selectionModel().selectedRows()}
        self.doc.select([self._ids[r] for r in rows])

    def _item_changed(self, item: QTableWidgetItem) -> None:
        sid = self._ids[item.row()]
        if item.column() == COL_VISIBLE:
            self.doc.set_hidden([sid], item.checkState() != Qt.Checked)
        elif item.column() == COL_LOCKED:
            self.doc.set_locked([sid], item.checkState() == Qt.Checked)
        elif item.column() == COL_NAME:
            self.doc.rename(sid, item.text())
