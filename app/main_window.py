"""The studio's main window: the viewport fills it; compact, collapsible docks around it.

Segments on the left, properties and the selection tools on the right, the log
at the bottom (closed until a job runs or View > Panels opens it). The
status bar always tells the live Gaussian count and the selection after
every edit, undo, redo and selection change.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication, QFileDialog, QLabel, QMainWindow, QMessageBox

from app.actions import build_menus
from app.document import StudioDocument
from app.loading import LoadedModel, load_path
from app.log_dock import LogDock
from app.editing import EditController
from app.panels import SegmentsPanel
from app.palette import segment_colors
from app.project_files import ProjectFiles
from app.properties import PropertiesPanel
from app.picking import Picker
from app.picking import warm_up as warm_up_picks
from app.selection_panel import SelectionPanel
from app.tools import ViewportTools
from app.viewport.camera import look_rotation
from app.viewport import compose
from app.viewport.canvas import SplatCanvas
from app.workers import GeneratorWorker
from coseg.edit import selection as sel
from coseg.edit.project import PROJECT_SUFFIX
from coseg.errors import CosegError

log = logging.getLogger(__name__)
OPEN_ERRORS = (CosegError, ValueError, OSError, KeyError)
MAX_RECENT = 8


def _warm_up() -> None:
    """Load (or compile) the numba kernels of picks, screen selections and buffer updates (a background thread)."""
    warm_up_picks()
    sel.warm_up()
    compose.warm_up()


class MainWindow(QMainWindow):
    """CoSeg Studio's window (controls and shortcuts: docs/studio.md)."""

    def __init__(self, size: tuple[int, int] = (1280, 720)) -> None:
        super().__init__()
        self.setWindowTitle("CoSeg Studio")
        self.setAcceptDrops(True)
        self.settings = QSettings("coseg", "studio")
        self.doc = StudioDocument(self)
        self.canvas = SplatCanvas(parent=self, size=size)
        self.setCentralWidget(self.canvas.native)
        self.picker = Picker()
        threading.Thread(target=_warm_up, name="coseg-kernel-warm-up", daemon=True).start()
        self.worker: GeneratorWorker | None = None
        self.headless = False
        """True for --screenshot / --benchmark: errors go to stderr instead of a dialog."""
        self.editor = EditController(self.doc, self.canvas, self)
        self.tools = ViewportTools(self)
        self.canvas.tools = self.tools
        self.projects = ProjectFiles(self)
        self.segments_panel = SegmentsPanel(self.doc, self.editor, self)
        self.selection_panel = SelectionPanel(self, self)
        self.properties_panel = PropertiesPanel(self.doc, self.editor, self)
        self.log_dock = LogDock(self)
        self.addDockWidget(Qt.LeftDockWidgetArea, self.segments_panel)
        self.addDockWidget(Qt.RightDockWidgetArea, self.properties_panel)
        self.addDockWidget(Qt.RightDockWidgetArea, self.selection_panel)
        self.addDockWidget(Qt.BottomDockWidgetArea, self.log_dock)
        self.log_dock.hide()  # opened by a job, or View > Panels > Log
        self.resizeDocks([self.segments_panel, self.properties_panel], [230, 210], Qt.Horizontal)
        self._shown_segments = np.zeros(0, np.int32)
        logging.getLogger("coseg").addHandler(self.log_dock.handler)
        self._coseg_log_level = logging.getLogger("coseg").level
        logging.getLogger("coseg").setLevel(logging.INFO)
        logging.getLogger("app").addHandler(self.log_dock.handler)
        self.fps_label, self.note_label = QLabel(""), QLabel("Open a .ply, a run folder or a scene folder (Ctrl+O)")
        self.count_label = QLabel("")
        self.statusBar().addWidget(self.note_label, 1)
        self.statusBar().addPermanentWidget(self.count_label)
        self.statusBar().addPermanentWidget(self.fps_label)
        self.actions = build_menus(self)
        self.doc.model_changed.connect(self._upload_model)
        self.doc.rows_changed.connect(self._rows_changed)
        self.doc.selection_changed.connect(self._state_changed)
        self.doc.state_changed.connect(self._state_changed)
        self.doc.state_changed.connect(self._refresh_picker)
        for sig in (self.doc.model_changed, self.doc.rows_changed, self.doc.selection_changed,
                    self.doc.state_changed):
            sig.connect(self.refresh_counts)
        self.tools.selected.connect(lambda n, ms: self.statusBar().showMessage(
            f"{n:,} splats selected ({ms:.0f} ms)", 4000))
        self.canvas.signals.picked.connect(self.pick_at)
        self.canvas.signals.fps_changed.connect(lambda fps: self.fps_label.setText(f"{fps:5.1f} FPS"))
        self.log_dock.pause_clicked.connect(self.toggle_pause)
        self.log_dock.stop_clicked.connect(self.stop_job)

    # ------------------------------------------------------------ opening
    def open_path(self, path: str | Path) -> bool:
        """Open a .ply/.splat, run folder, scene folder or .cosegproj; errors become a dialog."""
        if str(path).endswith(PROJECT_SUFFIX):
            opened = self.projects.open_project(path)
            if opened:
                self._remember(Path(path))
            return opened
        return self.open_source(path)

    def open_source(self, path: str | Path, offer_autosave: bool = True) -> bool:
        """Open a .ply/.splat, run folder or scene folder (offering its autosaved edits)."""
        t0 = time.perf_counter()
        try:
            loaded = load_path(path)
        except OPEN_ERRORS as e:
            msg = str(e).strip("'\"") or type(e).__name__
            log.error("cannot open %s: %s", path, msg)
            self.show_error("Cannot open", msg)
            return False
        self.projects.closing()
        self.set_loaded(loaded)
        self._remember(Path(path))
        log.info("opened %s in %.2f s", path, time.perf_counter() - t0)
        self.projects.source_opened(Path(path), offer=offer_autosave)
        return True

    def show_error(self, title: str, message: str) -> None:
        """One-line error: a dialog, or stderr when headless."""
        if self.headless:
            print(f"coseg-studio: {message}", file=sys.stderr)
        else:
            QMessageBox.critical(self, title, message)

    def set_loaded(self, loaded: LoadedModel) -> None:
        self.doc.set_model(loaded)
        self.note_label.setText(loaded.note)
        self.setWindowTitle(f"CoSeg Studio - {loaded.path.name}")
        self.actions.refresh_cameras()
        self.actions.set_features_available(loaded.features is not None)
        self.reset_view()

    def show_preview(self, loaded: LoadedModel) -> None:
        """Show a model produced by a running job, keeping the camera (edits are not kept)."""
        self.doc.set_model(loaded)
        self.note_label.setText(loaded.note)

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open", "", "Gaussians or project (*.ply *.spz *.splat *.cosegproj);;All files (*)")
        if path:
            self.open_path(path)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a run or scene folder")
        if path:
            self.open_path(path)

    def recent_files(self) -> list[str]:
        return [str(p) for p in (self.settings.value("recent", []) or [])]

    def _remember(self, path: Path) -> None:
        items = [str(path.resolve())] + [p for p in self.recent_files() if p != str(path.resolve())]
        self.settings.setValue("recent", items[:MAX_RECENT])
        self.actions.refresh_recent()

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls:
            self.open_path(urls[0].toLocalFile())

    # ------------------------------------------------------------ viewport sync
    def _upload_model(self) -> None:
        g = self.doc.gaussians
        alt = self._alt_colors()
        self._shown_segments = g.segments.copy()
        self.canvas.set_model(g.means, lambda r: (r.set_gaussians(g, alt), r.set_state(self.doc.state_array())))
        self._refresh_picker()

    def refresh_counts(self, *_args) -> None:
        """The status bar's live Gaussian and selection counts (true after every edit)."""
        if not self.doc.is_open:
            self.count_label.setText("")
            return
        live = int((~self.doc.edits.deleted).sum())
        selected = int(self.doc.state.selection.sum())
        text = f"{live:,} Gaussians"
        if selected:
            text += f" · {selected:,} selected in {len(self.doc.selection)} segment(s)"
        self.count_label.setText(text)

    def _alt_colors(self) -> np.ndarray:
        if self.canvas.mode == "features":
            from app.loading import feature_colors, gaussian_features

            features = gaussian_features(self.doc.gaussians)
            if features is not None:
                return feature_colors(features)
        return self.doc.segment_colors()

    def _rows_changed(self, rows) -> None:
        g = self.doc.gaussians
        if rows is None or self.canvas.renderer.count != len(g):
            self._upload_model()
            return
        self.canvas.set_current()
        rows = np.asarray(rows, np.int64)
        moved = self.canvas.renderer.update_rows(g, rows)
        relabelled = rows[g.segments[rows] != self._shown_segments[rows]] if len(rows) else rows
        if len(relabelled):  # an assign, merge or split: new segment colours for those rows
            self._shown_segments[relabelled] = g.segments[relabelled]
            if self.canvas.mode != "features":
                self.canvas.renderer.update_alt_rows(relabelled, segment_colors(g.segments[relabelled]))
        self.canvas.renderer.set_state(self.doc.state_array())
        if moved:
            self.canvas.set_means(g.means)
        self.canvas.show_edit(bool(moved))
        self._refresh_picker()

    def _state_changed(self) -> None:
        if not self.doc.is_open:
            return
        self.canvas.set_current()
        self.canvas.renderer.set_state(self.doc.state_array())
        self.canvas.update()

    def _refresh_picker(self) -> None:
        if self.doc.is_open:
            self.picker.set_model(self.doc.gaussians, self.doc.visible_mask())

    def set_mode(self, mode: str) -> None:
        self.canvas.mode = mode
        self.actions.show_mode(mode)  # a mode set from code (--mode, tests) shows in the menu and toolbar too
        if self.doc.is_open:
            self.canvas.set_current()
            self.canvas.renderer.set_alt_colors(self._alt_colors())
        self.canvas.update()

    # ------------------------------------------------------------ camera
    def reset_view(self) -> None:
        """Frame the whole model; with a scene, look from its first training camera."""
        g = self.doc.gaussians
        if not len(g):
            return
        lo, hi = np.percentile(g.means, [1, 99], axis=0)
        centre, radius = (lo + hi) / 2, float(np.linalg.norm(hi - lo) / 2) or 1.0
        cam = self.canvas.camera
        scene = self.doc.loaded.scene
        self.canvas.scene_radius = radius
        if scene is not None and scene.cameras:
            downs = np.stack([c.camera_to_world[:3, 1] for c in scene.cameras])
            cam.up = -downs.mean(0) / max(np.linalg.norm(downs.mean(0)), 1e-9)
            self.snap_to_camera(0)
            return
        cam.up = np.array([0.0, 0.0, 1.0])
        cam.rotation = look_rotation(np.array([0.0, 1.0, -0.5]), cam.up)
        cam.frame(centre, radius)
        self.after_camera_jump(radius)

    def snap_to_camera(self, index: int) -> None:
        scene = self.doc.loaded.scene if self.doc.is_open else None
        if scene is None or not scene.cameras:
            return
        c = scene.cameras[index % len(scene.cameras)]
        centre = np.percentile(self.doc.gaussians.means, 50, axis=0)
        self.canvas.camera.snap_to(c, distance=float(np.linalg.norm(centre - c.center)) or 1.0)
        self.after_camera_jump(self.canvas.scene_radius)

    def frame_selection(self) -> None:
        rows = self.doc.selected_rows()
        if not len(rows):
            rows = np.flatnonzero(self.doc.visible_mask())
        if not len(rows):
            return
        pts = self.doc.gaussians.means[rows]
        lo, hi = np.percentile(pts, [1, 99], axis=0)
        self.canvas.camera.frame((lo + hi) / 2, max(float(np.linalg.norm(hi - lo) / 2), 1e-3))
        self.after_camera_jump(self.canvas.scene_radius)

    def after_camera_jump(self, radius: float) -> None:
        d = float(np.linalg.norm(self.canvas.camera.position - np.percentile(self.doc.gaussians.means, 50, axis=0)))
        self.canvas.set_depth_range(max(0.2, d - radius), d + radius)
        self.canvas.request_sort(force=True)
        self.canvas.update()

    # ------------------------------------------------------------ selection
    def pick_at(self, x: int, y: int, modifier: str = "") -> int | None:
        """Select the segment under logical pixel (x, y) of the viewport."""
        if not self.doc.is_open:
            return None
        ratio = self.canvas.pixel_scale
        w, h = self.canvas.physical_size
        t0 = time.perf_counter()
        sid = self.picker.pick(self.canvas.camera.viewmat(), self.canvas.camera.focal(w, h), (w, h),
                               (x + 0.5) * ratio, (y + 0.5) * ratio)
        how = {"shift": "add", "ctrl": "remove"}.get(modifier, "replace")
        if sid is None:
            if how == "replace":
                self.doc.select_none()
        else:
            self.doc.select([sid], how)
        self.statusBar().showMessage(f"picked {'nothing' if sid is None else self.doc.name_of(sid)} "
                                     f"in {1000 * (time.perf_counter() - t0):.0f} ms", 3000)
        return sid

    def hide_selection(self) -> None:
        self.editor.hide()

    def show_all(self) -> None:
        self.editor.show_all()

    def fill_screen(self, fraction: float = 0.9) -> None:
        """Size the window to `fraction` of the screen's available area, centred."""
        screen = self.screen() or QApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        w, h = int(area.width() * fraction), int(area.height() * fraction)
        self.setGeometry(area.x() + (area.width() - w) // 2, area.y() + (area.height() - h) // 2, w, h)

    def delete_selection(self) -> None:
        self.editor.delete()

    def export_dialog(self, selected_only: bool = False) -> None:
        self.projects.export(selected_only)

    # ------------------------------------------------------------ jobs
    def start_job(self, worker: GeneratorWorker) -> None:
        """Run a background job (one at a time) with progress in the log dock."""
        if self.worker is not None and self.worker.isRunning():
            QMessageBox.information(self, "Busy", f"{self.worker.name} is still running")
            return
        self.worker = worker
        self.log_dock.show()
        self.log_dock.job_started(worker.name)
        worker.progress.connect(self.log_dock.job_progress)
        worker.finished_with.connect(lambda rec: self.log_dock.job_ended(
            f"{worker.name}: {rec.get('event', 'done')}"))
        worker.failed.connect(lambda msg: (self.log_dock.job_ended(msg), self.show_error("Job failed", msg)))
        worker.start()

    def toggle_pause(self) -> None:
        if self.worker is None:
            return
        if self.worker.paused:
            self.worker.resume()
        else:
            self.worker.pause()
        self.log_dock.set_paused(self.worker.paused)

    def stop_job(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    def closeEvent(self, event) -> None:
        if self.worker is not None and self.worker.isRunning():
            answer = QMessageBox.question(self, "Job running",
                                          f"{self.worker.name} is running. Stop it (a checkpoint is kept) and quit?")
            if answer != QMessageBox.Yes:
                event.ignore()
                return
            self.worker.stop()
            self.worker.wait()
        self.projects.closing()
        logging.getLogger("coseg").removeHandler(self.log_dock.handler)
        logging.getLogger("coseg").setLevel(self._coseg_log_level)
        logging.getLogger("app").removeHandler(self.log_dock.handler)
        self.canvas.close_viewport()
        super().closeEvent(event)
