"""The Segmentation Learning Stage (paper Sec. 3.3): a generator of progress records.

`segment(run_dir, config)` reads the run's built Gaussians and its scene,
moves both into the run's working frame (`coseg.normalize`), prepares the inputs (`coseg.segment.prepare`), trains the fusion decoder (or
the per-Gaussian baseline) with the CoSeg loss against the raw training labels
rendered through the engine (Eq. 3, softmax per pixel), then decodes every
Gaussian's logits and writes ``segmented.ply`` (with a ``segment`` property =
the predicted class id), ``segmentation.npz`` (logits and the kept-Gaussian
index) and a ``segmentation`` section in config.json and metrics.json.

Only the training split's images and labels are used. A stop request (a
`threading.Event`) is honoured at the next iteration: the decoder is
checkpointed and the stage can be resumed with ``resume=True``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from coseg.errors import CosegError, InputError
from coseg.segment.config import SegmentConfig
from coseg.segment.model import SegmentationModel

log = logging.getLogger(__name__)


def _load_run(run_dir: Path):
    from coseg.io.ply import read_gaussians_ply
    from coseg.normalize import working_inputs
    from coseg.readers import read_run_scene
    from coseg.run import RunDir

    run = RunDir.open(run_dir)
    if not run.gaussians_path.exists():
        raise InputError(f"{run.path}: has no gaussians.ply — run the building stage first "
                         f"(coseg build SCENE --out {run.path})")
    scene_cfg = run.read_config().get("scene") or {}
    if not scene_cfg.get("path"):
        raise InputError(f"{run.config_path}: records no scene folder; the segmentation stage needs "
                         "the scene's images and labels")
    scene = read_run_scene(run)
    scene, gaussians, _ = working_inputs(run, scene, read_gaussians_ply(run.gaussians_path))
    return run, scene, gaussians


def segment(run_dir: str | Path, config: SegmentConfig | None = None, stop_event=None,
            resume: bool = False, overwrite: bool = False) -> Iterator[dict]:
    """Train the segmentation field of a built run; yields progress records.

    ``segmented.ply`` and ``segmentation.npz`` are written only when the stage
    completes; a stopped stage keeps its checkpoint (and any earlier result).

    Args:
        run_dir: a run folder with gaussians.ply and a scene reference.
        config: stage settings (default `SegmentConfig()`; on resume the run's
            recorded settings are used).
        stop_event: object with ``is_set()``; when set, the stage checkpoints and stops.
        resume: continue from the stage's last checkpoint (a completed stage
            yields its "done" record and writes nothing).
        overwrite: start afresh over an earlier segmentation result or unfinished
            stage (kept in ``previous/`` until the new result is complete).

    Yields:
        dicts with at least ``stage``; training records add iteration, loss,
        pix, reg, it_per_s, eta_s, elapsed_s.
    """
    config = config or SegmentConfig()
    run, scene, gaussians = _load_run(Path(run_dir))
    check_segmentation_scene(scene)
    start_as = run.start_stage("segmentation", overwrite=overwrite, resume=resume)
    if start_as == "complete":
        yield {"stage": "done", **run.read_metrics()["segmentation"]}
        return
    if start_as == "resume":
        config = SegmentConfig.from_dict(run.read_config().get("segmentation") or config.to_dict())
        log.info("resuming the segmentation of %s with its recorded settings", run.path)
    run.update_config("segmentation", config.to_dict())
    if config.field == "label-vote":
        from coseg.segment.vote import vote_stage

        yield from vote_stage(run, scene, gaussians, config)
        return
    t_start = time.perf_counter()
    model = SegmentationModel(run, scene, gaussians, config)
    for rec in model.prepare():
        yield rec
        if stop_event is not None and stop_event.is_set():
            run.update_metrics("segmentation", {"completed": False, "iteration": 0,
                                                "iterations": config.iterations}, replace=True)
            yield {"stage": "stopped", "iteration": 0}
            return
    prepare_s = time.perf_counter() - t_start
    start_it = model.load_checkpoint() if start_as == "resume" else 0
    t_train = time.perf_counter()
    it = start_it
    for it in range(start_it + 1, config.iterations + 1):
        losses = model.train_step(it)
        if it % config.log_every == 0 or it == config.iterations:
            elapsed = time.perf_counter() - t_train
            rate = (it - start_it) / max(elapsed, 1e-9)
            yield {"stage": "train", "iteration": it, "iterations": config.iterations, **losses,
                   "it_per_s": rate, "eta_s": (config.iterations - it) / max(rate, 1e-9),
                   "elapsed_s": elapsed}
        if stop_event is not None and stop_event.is_set():
            model.save_checkpoint(it)
            run.update_metrics("segmentation", {"completed": False, "iteration": it,
                                                "iterations": config.iterations}, replace=True)
            yield {"stage": "stopped", "iteration": it}
            return
        if it % config.checkpoint_every == 0:
            model.save_checkpoint(it)
    train_s = time.perf_counter() - t_train
    model.save_checkpoint(it)
    yield {"stage": "infer"}
    from coseg.building.trainer import peak_rss_mb

    with run.writing_results("segmentation") as result:
        summary = model.write_outputs(result.dir)
        summary.update(prepare_s=round(prepare_s, 2), train_s=round(train_s, 2),
                       segmentation_total_s=round(time.perf_counter() - t_start, 2),
                       peak_rss_mb=round(peak_rss_mb(), 1))
        result.metrics = summary
    yield {"stage": "done", **summary, "completed": True}


def check_segmentation_scene(scene) -> None:
    """Raise InputError unless the scene has >= 2 training views of one size."""
    cams = scene.train_cameras
    if len(cams) < 2:
        raise InputError(f"{scene.root}: fewer than 2 training views")
    sizes = sorted({(c.width, c.height) for c in cams})
    if len(sizes) > 1:
        raise InputError(f"{scene.root}: training images have mixed sizes ({', '.join(f'{w}x{h}' for w, h in sizes)}); "
                         "the segmentation stage needs one size (use the reader's downscale or resize them)")


def require_segmented(run_dir: Path) -> Path:
    """Path of a run's segmentation.npz, or a clear error."""
    path = Path(run_dir) / "segmentation.npz"
    if not path.exists():
        raise CosegError(f"{run_dir}: no segmentation yet — run `coseg segment {run_dir}` first")
    return path


def load_segmentation(run_dir: Path) -> dict:
    """Logits [N_kept, C], kept indices, class ids of a segmented run."""
    with np.load(require_segmented(run_dir)) as z:
        return {k: z[k] for k in z.files}


def segmentation_logits_tensor(seg: dict) -> torch.Tensor:
    return torch.from_numpy(seg["logits"].astype(np.float32))
