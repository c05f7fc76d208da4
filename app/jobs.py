"""Long engine jobs started from the studio, run through `GeneratorWorker`.

Building runs the same generator as `coseg build` (`coseg.building.train`);
when it ends (done or stopped, with its checkpoint kept) the run folder is
opened, so the viewport shows the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from app.workers import GeneratorWorker

if TYPE_CHECKING:
    from app.main_window import MainWindow


def build_worker(scene, run_dir: Path, iterations: int) -> GeneratorWorker:
    """A worker that runs the building stage on `scene` into `run_dir`."""
    from coseg.building import BuildConfig, train

    config = BuildConfig(iterations=iterations)
    resume = (Path(run_dir) / "checkpoints").is_dir() and any((Path(run_dir) / "checkpoints").iterdir())
    return GeneratorWorker(lambda stop: train(scene, config, run_dir, stop, resume=resume),
                           name=f"build {Path(run_dir).name}", cooperative=True)


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
    worker.finished_with.connect(lambda _rec: win.open_path(folder))
    win.start_job(worker)
