"""The log / progress dock: coseg's log records, the running job's progress and loss curve."""

from __future__ import annotations

import logging
import math

from PySide6.QtCore import QObject, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import (QDockWidget, QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar,
                               QPushButton, QVBoxLayout, QWidget)


class _Emitter(QObject):
    record = Signal(str, int)


class QtLogHandler(logging.Handler):
    """Forwards log records (from any thread) to the GUI thread as a Qt signal."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.emitter = _Emitter()
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self.emitter.record.emit(self.format(record), record.levelno)


class LossCurve(QWidget):
    """A small live plot of the loss (log scale) against the step."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.points: list[tuple[float, float]] = []
        self.setMinimumHeight(50)

    def add(self, step: float, loss: float) -> None:
        if loss is not None and math.isfinite(loss) and loss > 0:
            self.points.append((float(step), math.log10(loss)))
            self.update()

    def clear(self) -> None:
        self.points.clear()
        self.update()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(30, 30, 34))
        if len(self.points) < 2:
            p.setPen(QColor(150, 150, 150))
            p.drawText(self.rect(), Qt.AlignCenter, "loss curve")
            return
        xs = [x for x, _ in self.points]
        ys = [y for _, y in self.points]
        x0, x1 = min(xs), max(xs) or 1.0
        y0, y1 = min(ys), max(ys)
        w, h, m = self.width(), self.height(), 6
        sx = (w - 2 * m) / max(x1 - x0, 1e-9)
        sy = (h - 2 * m) / max(y1 - y0, 1e-9)
        poly = QPolygonF([QPointF(m + (x - x0) * sx, h - m - (y - y0) * sy) for x, y in self.points])
        p.setPen(QPen(QColor(255, 170, 60), 1.5))
        p.drawPolyline(poly)
        p.setPen(QColor(200, 200, 200))
        p.drawText(m, 14, f"loss {10 ** ys[-1]:.4g}")


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return ""
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"ETA {h}:{m:02d}:{s:02d}" if h else f"ETA {m}:{s:02d}"


class LogDock(QDockWidget):
    """Log text, a progress bar with ETA, a loss curve and pause / stop buttons."""

    pause_clicked = Signal()
    stop_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Log", parent)
        self.setObjectName("log_dock")
        body = QWidget()
        layout = QVBoxLayout(body)
        row = QHBoxLayout()
        self.job_label = QLabel("no job running")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.eta = QLabel("")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        for b in (self.pause_button, self.stop_button):
            b.setEnabled(False)
        self.pause_button.clicked.connect(self.pause_clicked)
        self.stop_button.clicked.connect(self.stop_clicked)
        for w in (self.job_label, self.progress, self.eta, self.pause_button, self.stop_button):
            row.addWidget(w)
        layout.addLayout(row)
        self.curve = LossCurve()
        row2 = QHBoxLayout()
        row2.addWidget(self.curve, 1)
        self.text = QPlainTextEdit(readOnly=True)
        self.text.setMaximumBlockCount(5000)
        row2.addWidget(self.text, 3)
        layout.addLayout(row2, 1)
        self.setWidget(body)
        self.handler = QtLogHandler()
        self.handler.emitter.record.connect(self.append)

    def append(self, line: str, level: int = logging.INFO) -> None:
        prefix = "" if level < logging.WARNING else ("ERROR " if level >= logging.ERROR else "WARNING ")
        self.text.appendPlainText(prefix + line)

    # ------------------------------------------------------------ jobs
    def job_started(self, name: str) -> None:
        self.job_label.setText(name)
        self.curve.clear()
        self.progress.setRange(0, 0)
        self.eta.setText("")
        self.pause_button.setText("Pause")
        for b in (self.pause_button, self.stop_button):
            b.setEnabled(True)

    def job_progress(self, record: dict) -> None:
        total = record.get("iterations") or record.get("total")
        step = record.get("iteration") or record.get("step") or 0
        if total:
            self.progress.setRange(0, int(total))
            self.progress.setValue(int(step))
        self.eta.setText(format_eta(record.get("eta_s")))
        if record.get("loss") is not None:
            self.curve.add(step, float(record["loss"]))

    def job_ended(self, message: str) -> None:
        self.job_label.setText(message)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        self.eta.setText("")
        for b in (self.pause_button, self.stop_button):
            b.setEnabled(False)

    def set_paused(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")
