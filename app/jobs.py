"""Long engine jobs started from the studio, run through `GeneratorWorker`.

Building runs the same generator as `coseg build` (`coseg.building.train`)
and segmenting the one behind `coseg segment` (`coseg.segment.stage.segment`).
When a job ends (done or stopped, with its checkpoint kept) the run folder is
opened again, so the viewport shows the new Gaussians or segments (a stopped
build writes no gaussians.ply: its last preview stays). A job that would
replace a result asks first, naming the files (`confirm_replace`). Edits
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
"""Where the segmentation stage keeps its checkpoint inside a run (`coseg.segment.stage.Trainer.checkpoint_path`)."""

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
            gaussians = params_to_gaussians(ckpt["params"]).without_nonfinite(str(path))
            self.ready.emit(int(ckpt["iteration"]), gaussians)
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


def build_worker(scene, run_dir: Path, iterations: int, overwrite: bool = False) -> GeneratorWorker:
    """A worker that runs the building stage on `scene` into `run_dir` (resuming an unfinished build).

    `overwrite` replaces an earlier result (kept in RUN/previous/); ask first (`confirm_replace`).
    """
    from coseg.building import BuildConfig, train
    from coseg.run import RunDir

    config = BuildConfig(iterations=iterations)
    run = RunDir(run_dir)
    resume = not overwrite and run.config_path.exists() and bool(run.checkpoints_of("building"))
    return GeneratorWorker(lambda stop: train(scene, config, run_dir, stop, resume=resume, overwrite=overwrite),
                           name=f"build {Path(run_dir).name}", cooperative=True)


def segment_worker(run_dir: Path, config, resume: bool | None = None, overwrite: bool = False) -> GeneratorWorker:
    """A worker that runs the segmentation stage on a built run.

    Args:
        run_dir: run folder with gaussians.ply and a scene reference.
        config: a `coseg.segment.config.SegmentConfig`.
        resume: continue from the stage's checkpoint; None = when one exists (and not `overwrite`).
        overwrite: replace an earlier segmentation (kept in RUN/previous/); ask first (`confirm_replace`).
    """
    from coseg.segment.stage import segment

    if resume is None:
        resume = not overwrite and (Path(run_dir) / SEGMENT_CHECKPOINT).exists()
    return GeneratorWorker(lambda stop: segment(run_dir, config, stop, resume=resume, overwrite=overwrite),
                           name=f"segment {Path(run_dir).name}", cooperative=True)


def confirm_replace(win: "MainWindow", run_dir: Path, stage: str) -> bool | None:
    """Ask before a job replaces a stage result: True to replace, False when nothing is there, None to cancel.

    The question names what is lost from the run folder (the stage's result and
    the results made from it) and where it is kept (RUN/previous/).
    """
    from coseg.run import STAGE_FILES, RunDir

    run = RunDir(run_dir)
    if not run.config_path.exists() or not run.has_result(stage):
        return False  # nothing to replace (an unfinished stage is resumed)
    names = [n for s in (stage, *STAGE_FILES[stage].derived) for n in STAGE_FILES[s].results
             if (run.path / n).exists()]
    answer = QMessageBox.question(
        win, "Replace the result?",
        f"{run.path} already holds {', '.join(names)}. Replace it? The current files are moved to "
        f"{run.previous_dir} once the new result is complete.")
    return True if answer == QMessageBox.Yes else None


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

    overwrite = confirm_replace(win, Path(folder), "segmentation")
    if overwrite is None:
        return
    worker = segment_worker(Path(folder), SegmentConfig(iterations=iterations), overwrite=overwrite)
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
    overwrite = confirm_replace(win, Path(folder), "building")
    if overwrite is None:
        return
    worker = build_worker(loaded.scene, Path(folder), iterations, overwrite=overwrite)
    preview = BuildPreview(win, Path(folder))
    worker.progress.connect(preview.poll)
    worker.finished_with.connect(lambda rec: _build_ended(win, folder, rec))
    win.start_job(worker)


def _build_ended(win: "MainWindow", folder: str, record: dict) -> None:
    """Open the finished run; a stopped build wrote no gaussians.ply, so the preview stays."""
    if record.get("event") == "done":
        win.open_source(folder, offer_autosave=False)
    else:
        win.note_label.setText(f"build stopped at iteration {record.get('iteration')}: its checkpoint is kept; "
                               "Jobs > Build Gaussians on the same folder resumes it")
