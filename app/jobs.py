"""Long engine jobs started from the studio, run through `GeneratorWorker`.

Building runs the same generator as `coseg build` (`coseg.building.train`)
and segmenting the one behind `coseg segment` (`coseg.segment.stage.segment`).
When a job ends (done or stopped, with its checkpoint kept) the run folder is
opened again, so the viewport shows the new Gaussians or segments. Edits
made before are not replayed onto the new model (segment ids change): save
a project first to keep them (the autosave is replaced by the next edit).
Simplification: the viewport does not refresh during a job (the engine's
progress records carry no model, and the checkpoints are written only every
`checkpoint_every` steps); the preview updates when the job ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from app.workers import GeneratorWorker

SEGMENT_CHECKPOINT = "checkpoints/segment.pt"
"""Where the segmentation stage keeps its checkpoint inside a run (`SegmentationModel.checkpoint_path`)."""

if TYPE_CHECKING:
    from app.main_window import MainWindow


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
    """Ask for a run folder and start building the opened scene into it (resumes if it has checkpoints)."""
    loaded = win.doc.loaded
    if loaded is None or loaded.scene is None:
        QMessageBox.information(win, "Build", "Open a scene folder (or a run whose scene is available) first.")
        return
    folder = QFileDialog.getExistingDirectory(win, "Run folder for the build", str(loaded.scene.root.parent))
    if not folder:
        return
    iterations, ok = QInputDialog.getInt(win, "Build", "Iterations", 2000, 10, 100_000, 100)
    if not ok:
        return
    worker = build_worker(loaded.scene, Path(folder), iterations)
    worker.finished_with.connect(lambda _rec: win.open_source(folder, offer_autosave=False))
    win.start_job(worker)
