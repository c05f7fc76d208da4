"""Long engine jobs started from the studio, run through `GeneratorWorker`.

Building runs the same generator as `coseg build` (`coseg.building.train`)
and segmenting the one behind `coseg segment` (`coseg.segment.stage.segment`).
When a job ends (done or stopped, with its checkpoint kept) the run folder is
opened again, so the viewport shows the new Gaussians or segments. Edits
made before are not replayed onto the new model (segment ids change): save
a project first to keep them (the autosave is replaced by the next edit).

While a build runs, `BuildPreview` shows the Gaussians of each new checkpoint
(written every `checkpoint_every` steps, default 500): the progress records
carry no model, so the newest checkpoint is read on a helper thread when one
appears and the viewport swaps to it, keeping the camera. Simplification:
segmentation shows its segments only when the stage ends (its records carry
no labels and its checkpoint holds the field, not per-Gaussian labels).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from app.workers import GeneratorWorker

SEGMENT_CHECKPOINT = "checkpoints/segment.pt"
"""Where the segmentation stage keeps its checkpoint inside a run (`SegmentationModel.checkpoint_path`)."""

if TYPE_CHECKING:
    from app.main_window import MainWindow

log = logging.getLogger(__name__)


class BuildPreview(QObject):
    """Shows the newest building checkpoint of `run_dir` in the window while a build runs.

    Call `poll()` on every progress record; at most one checkpoint is read at a
    time, on a helper thread, and `ready(iteration, gaussians)` is emitted in
    the GUI thread when it is loaded.
    """

    ready = Signal(int, object)

    def __init__(self, win: "MainWindow", run_dir: Path) -> None:
        super().__init__(win)
        self.win = win
        self.run_dir = Path(run_dir)
        self.shown = -1
        self._loading = False
        self.ready.connect(self._show)

    def poll(self, _record: dict | None = None) -> None:
        from coseg.building.checkpoint import list_checkpoints

        found = list_checkpoints(self.run_dir / "checkpoints")
        if self._loading or not found or found[-1][0] <= self.shown:
            return
        self._loading = True
        threading.Thread(target=self._load, args=(found[-1][1],), name="coseg-build-preview", daemon=True).start()

    def _load(self, path: Path) -> None:
        import torch

        from coseg.building.optim import params_to_gaussians

        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
            self.ready.emit(int(ckpt["iteration"]), params_to_gaussians(ckpt["params"]))
        except (OSError, RuntimeError, KeyError, EOFError) as e:  # replaced or half-written: the next poll retries
            log.debug("preview of %s skipped: %s", path, e)
            self._loading = False

    def _show(self, iteration: int, gaussians) -> None:
        from app.loading import LoadedModel

        self._loading = False
        if iteration <= self.shown:
            return
        self.shown = iteration
        loaded = self.win.doc.loaded
        scene = loaded.scene if loaded is not None else None
        self.win.show_preview(LoadedModel(self.run_dir, "run", gaussians, scene=scene,
                                          note=f"build preview: iteration {iteration}, {len(gaussians):,} Gaussians"))


def build_worker(scene, run_dir: Path, iterations: int) -> GeneratorWorker:
    """A worker that runs the building stage on `scene` into `run_dir`."""
    from coseg.building import BuildConfig, train

    config = BuildConfig(iterations=iterations)
    resume = (Path(run_dir) / "checkpoints").is_dir() and any((Path(run_dir) / "checkpoints").iterdir())
    return GeneratorWorker(lambda stop: train(scene, config, run_dir, stop, resume=resume),
                           name=f"build {Path(run_dir).name}", cooperative=True)


def segment_worker(run_dir: Path, config, resume: bool | None = None) -> GeneratorWorker:
    """A worker that runs the segmentation stage on a built run.

    Args:
        run_dir: run folder with gaussians.ply and a scene reference.
        config: a `coseg.segment.config.SegmentConfig`.
        resume: continue from the stage's checkpoint; None = when one exists.
    """
    from coseg.segment.stage import segment

    if resume is None:
        resume = (Path(run_dir) / SEGMENT_CHECKPOINT).exists()
    return GeneratorWorker(lambda stop: segment(run_dir, config, stop, resume=resume),
                           name=f"segment {Path(run_dir).name}", cooperative=True)


def start_segment(win: "MainWindow") -> None:
    """Segment the opened run (or a chosen run folder); the run is reopened when the stage ends."""
    loaded = win.doc.loaded
    folder = str(loaded.path) if loaded is not None and loaded.kind == "run" else ""
    if not folder:
        folder = QFileDialog.getExistingDirectory(win, "Run folder to segment (with gaussians.ply)")
        if not folder:
            return
    iterations, ok = QInputDialog.getInt(win, "Segment", "Iterations", 600, 1, 100_000, 100)
    if not ok:
        return
    from coseg.segment.config import SegmentConfig

    worker = segment_worker(Path(folder), SegmentConfig(iterations=iterations))
    worker.finished_with.connect(lambda _rec: win.open_source(folder, offer_autosave=False))
    win.start_job(worker)


def start_build(win: "MainWindow") -> None:
    """Ask for a run folder (made if new) and build the opened scene into it (resumes from its checkpoints).

    The dialog proposes ``<scene>-run`` beside the scene folder; a name that
    does not exist yet is created. The iterations default to the CLI's
    (`BuildConfig().iterations`).
    """
    from coseg.building import BuildConfig

    loaded = win.doc.loaded
    if loaded is None or loaded.scene is None:
        QMessageBox.information(win, "Build", "Open a scene folder (or a run whose scene is available) first.")
        return
    root = Path(loaded.scene.root)
    folder, _ = QFileDialog.getSaveFileName(win, "Run folder for the build (a new or an existing folder)",
                                            str(root.parent / f"{root.name}-run"), "Folders (*)",
                                            options=QFileDialog.DontConfirmOverwrite)
    if not folder:
        return
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        win.show_error("Build", f"{folder}: cannot create the run folder ({e.strerror or e})")
        return
    iterations, ok = QInputDialog.getInt(win, "Build", "Iterations", BuildConfig().iterations, 10, 100_000, 100)
    if not ok:
        return
    worker = build_worker(loaded.scene, Path(folder), iterations)
    preview = BuildPreview(win, Path(folder))
    worker.progress.connect(preview.poll)
    worker.finished_with.connect(lambda _rec: win.open_source(folder, offer_autosave=False))
    win.start_job(worker)
