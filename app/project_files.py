"""Studio projects, autosave and export of the edited scene.

- A project (`.cosegproj`, `coseg.edit.project`) stores the opened source, the
  edit history and the view state (segment names, hidden / locked segments,
  camera). Opening it reads the source and replays the edits.
- After every edit step (a drag: once, at its end), undo and redo, the
  history is autosaved to `coseg.edit.project.autosave_path(source)`. Opening
  a source whose autosave holds edits offers to restore them. The autosave is
  removed when the window closes with no edits, or with the edits saved in a
  project.
- Export writes INRIA PLY with `segment`, plain INRIA PLY, compressed PLY
  (PlayCanvas / SuperSplat), `.spz` or `.splat`, of the whole edited scene
  or the selected splats only. The dialog opens in the opened run's folder
  (a file's own folder) with a name made from it ("<name>-edited.ply",
  "<name>-selection.ply"). It never replaces the source or the loaded file,
  and replaces another existing file only when the save dialog has asked
  about it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog, QMessageBox

from coseg.edit.project import (PROJECT_SUFFIX, StudioProject, autosave_path, check_fits, load_project,
                                 model_fingerprint, save_project)
from coseg.errors import CosegError

if TYPE_CHECKING:
    from app.main_window import MainWindow

log = logging.getLogger(__name__)

EXPORT_FILTERS = {
    "INRIA PLY with segment (*.ply)": "ply",
    "Plain INRIA PLY, no segment (*.ply)": "ply-plain",
    "Compressed PLY, PlayCanvas / SuperSplat (*.compressed.ply)": "ply-compressed",
    "Niantic SPZ (*.spz)": "spz",
    "antimatter15 splat (*.splat)": "splat",
}
_SUFFIX_OF = {"ply": ".ply", "ply-plain": ".ply", "ply-compressed": ".compressed.ply", "spz": ".spz",
              "splat": ".splat"}
PROJECT_FILTER = f"CoSeg Studio project (*{PROJECT_SUFFIX})"


class ProjectFiles(QObject):
    """Project save/open, autosave and export for one main window."""

    def __init__(self, win: "MainWindow") -> None:
        super().__init__(win)
        self.win = win
        self.source: Path | None = None
        """The file or folder opened (what a project refers to)."""
        self.project_path: Path | None = None
        self._saved_ops: list[dict] = []
        self._fingerprint: dict = {}
        """`model_fingerprint` of the opened source's Gaussians, saved with every project and autosave."""
        win.doc.history_changed.connect(self.autosave)

    # ------------------------------------------------------------ state
    def current(self) -> StudioProject:
        doc, cam = self.win.doc, self.win.canvas.camera
        view = doc.view_state()
        view["camera"] = {"rotation": np.asarray(cam.rotation).tolist(), "target": np.asarray(cam.target).tolist(),
                          "distance": float(cam.distance), "up": np.asarray(cam.up).tolist()}
        return StudioProject(self.source, doc.edits.ops, view, self._fingerprint)

    def _restore_view(self, view: dict) -> None:
        self.win.doc.apply_view_state(view)
        cam = view.get("camera")
        if cam:
            c = self.win.canvas.camera
            c.rotation = np.asarray(cam["rotation"], np.float64)
            c.target = np.asarray(cam["target"], np.float64)
            c.distance = float(cam["distance"])
            c.up = np.asarray(cam["up"], np.float64)
            self.win.after_camera_jump(self.win.canvas.scene_radius)

    @property
    def dirty(self) -> bool:
        """Edits exist that no project file holds."""
        return self.win.doc.is_open and self.win.doc.edits.ops != self._saved_ops

    # ------------------------------------------------------------ opening
    def source_opened(self, path: Path, offer: bool = True) -> None:
        """A source was opened: forget the project; with `offer`, offer an autosave that holds edits."""
        self.source, self.project_path, self._saved_ops = Path(path).resolve(), None, []
        self._fingerprint = model_fingerprint(self.win.doc.loaded.gaussians)
        auto = autosave_path(self.source)
        if not offer or not auto.exists() or self.win.headless:
            return
        try:
            saved = load_project(auto)
        except CosegError as e:
            log.warning("ignoring the autosave %s: %s", auto, e)
            return
        if not saved.ops:
            return
        try:
            check_fits(saved, self.win.doc.loaded.gaussians, auto)
        except CosegError as e:  # re-built or re-segmented since: replaying would edit other Gaussians
            kept = self._set_aside(auto)
            log.warning("autosaved edits of %s not restored: %s; kept in %s", self.source, e, kept)
            QMessageBox.warning(
                self.win, "Edits not restored",
                f"{len(saved.ops)} autosaved edit(s) of {self.source.name} do not fit the model opened now: "
                f"{str(e).split(': ', 1)[-1]}. Nothing was restored; the edits are kept in {kept}.")
            return
        answer = QMessageBox.question(
            self.win, "Restore edits?",
            f"{len(saved.ops)} unsaved edit(s) of {self.source.name} were autosaved. Restore them?")
        if answer != QMessageBox.Yes:
            auto.unlink(missing_ok=True)
            return
        self.win.doc.replay(saved.ops)
        self._restore_view(saved.view)
        log.info("restored %d edits from %s", len(saved.ops), auto)

    @staticmethod
    def _set_aside(auto: Path) -> Path:
        """Move an autosave that cannot be restored out of the way (the next edit would replace it)."""
        import time

        kept = auto.with_name(f"{auto.stem}.unrestored-{time.strftime('%Y%m%d-%H%M%S')}{auto.suffix}")
        try:
            auto.replace(kept)
        except OSError:
            return auto
        return kept

    def open_project(self, path: str | Path) -> bool:
        """Open a `.cosegproj`: its source, then its edits and view."""
        try:
            project = load_project(path)
        except CosegError as e:
            self.win.show_error("Cannot open project", str(e))
            return False
        if not self.win.open_source(project.source, offer_autosave=False):
            return False
        try:
            check_fits(project, self.win.doc.loaded.gaussians, path)
            self.win.doc.replay(project.ops)
        except CosegError as e:
            self.win.show_error("Cannot replay project", str(e))
            return False
        except (ValueError, KeyError) as e:
            self.win.show_error("Cannot replay project", f"{path}: {e}")
            return False
        self._restore_view(project.view)
        self.project_path, self._saved_ops = Path(path).resolve(), list(project.ops)
        self.win.setWindowTitle(f"CoSeg Studio - {Path(path).name}")
        return True

    # ------------------------------------------------------------ saving
    def save(self, path: str | Path | None = None, ask: bool = False) -> Path | None:
        """Save the project to `path`, the current project file, or a chosen file."""
        if not self.win.doc.is_open:
            return None
        if path is None and (ask or self.project_path is None):
            chosen, _ = QFileDialog.getSaveFileName(self.win, "Save project", "", PROJECT_FILTER)
            if not chosen:
                return None
            path = chosen if chosen.endswith(PROJECT_SUFFIX) else chosen + PROJECT_SUFFIX
        path = Path(path or self.project_path)
        try:
            save_project(path, self.current())
        except (CosegError, OSError) as e:
            self.win.show_error("Cannot save project", str(e))
            return None
        self.project_path, self._saved_ops = path.resolve(), self.win.doc.edits.ops
        self.win.statusBar().showMessage(f"saved {path}", 5000)
        return path

    def autosave(self) -> Path | None:
        """Write the edit history to the source's autosave file (every edit step).

        Not in headless runs (`--benchmark` edits the model to time it; those
        edits are nobody's work and must not be offered for restoring later).
        """
        if not self.win.doc.is_open or self.source is None or self.win.headless:
            return None
        path = autosave_path(self.source)
        try:
            save_project(path, self.current())
        except (CosegError, OSError) as e:
            log.warning("autosave failed: %s", e)
            return None
        return path

    def closing(self) -> None:
        """Drop the autosave when nothing would be lost without it."""
        if self.source is not None and self.win.doc.is_open and not self.dirty:
            autosave_path(self.source).unlink(missing_ok=True)

    # ------------------------------------------------------------ export
    def default_export_path(self, selected_only: bool = False) -> Path:
        """Beside the opened run (inside a run folder, beside a file) with a name made from it."""
        src = self.source or Path.cwd()
        folder = src if src.is_dir() else src.parent
        name = src.name if src.is_dir() else src.name.split(".")[0]
        return folder / f"{name}-{'selection' if selected_only else 'edited'}.ply"

    def export(self, selected_only: bool = False, path: str | Path | None = None, fmt: str | None = None) -> Path | None:
        """Export the edited scene (or the selected segments) with a format chosen by filter or suffix."""
        doc = self.win.doc
        if not doc.is_open or (selected_only and not doc.has_selection):
            return None
        confirmed = False
        if path is None:
            title = "Export selection" if selected_only else "Export edited scene"
            chosen, chosen_filter = QFileDialog.getSaveFileName(
                self.win, title, str(self.default_export_path(selected_only)), ";;".join(EXPORT_FILTERS))
            if not chosen:
                return None
            # The save dialog has already asked before replacing an existing file.
            path, fmt, confirmed = chosen, EXPORT_FILTERS.get(chosen_filter), True
        from coseg.edit import export_gaussians

        path = Path(path)
        if fmt is not None and not path.name.lower().endswith(_SUFFIX_OF[fmt]):
            stem = path.name[:-len(".compressed.ply")] if path.name.lower().endswith(".compressed.ply") \
                else path.stem
            path = path.with_name(stem + _SUFFIX_OF[fmt])
        confirmed = confirmed and path == Path(chosen)
        inputs = tuple(p for p in (self.source, doc.loaded.path) if p is not None)
        result = doc.edits.result(rows=doc.selected_rows() if selected_only else None)
        try:
            out = export_gaussians(result, path, fmt, inputs=inputs, force=confirmed)
        except (CosegError, OSError) as e:
            self.win.show_error("Cannot export", str(e))
            return None
        self.win.statusBar().showMessage(f"exported {len(result):,} Gaussians to {out}", 5000)
        log.info("exported %d Gaussians to %s", len(result), out)
        return out
