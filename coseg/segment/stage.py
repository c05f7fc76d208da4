"""The Segmentation Learning Stage (paper Sec. 3.3): a generator of progress records.

`segment(run_dir, config)` reads the run's built Gaussians and its scene,
moves both into the run's working frame (`coseg.normalize`), looks the
configured field up (`coseg.segment.fields`), lets it prepare its inputs,
trains it (the `Trainer` owns the optimiser, the learning-rate schedule, the
view order and the checkpoints; the field computes the loss of one view),
then stores every Gaussian's logits: ``segmented.ply`` (with a ``segment``
property = the predicted class id), ``segmentation.npz`` (logits and the
kept-Gaussian index) and a ``segmentation`` section in config.json and
metrics.json.

Only the training split's images and labels are used. A stop request (a
`threading.Event`) is honoured at the next iteration: the decoder is
checkpointed and the stage can be resumed with ``resume=True`` (with the same settings).
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from coseg.errors import CosegError, InputError
from coseg.segment.config import SegmentConfig
from coseg.segment.fields import Field, StageInputs, field_class

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


def lr_factor(config: SegmentConfig, it: int) -> float:
    """Learning-rate multiplier at iteration `it` (1-based) of the configured schedule."""
    if config.lr_schedule == "constant":
        return 1.0
    t = min(1.0, (it - 1) / max(1, config.iterations - 1))
    return config.lr_final_ratio + (1.0 - config.lr_final_ratio) * 0.5 * (1.0 + float(np.cos(np.pi * t)))


class Trainer:
    """The optimiser, the view order and the checkpoints of one field (the field owns the loss)."""

    def __init__(self, field: Field, config: SegmentConfig, run) -> None:
        self.field, self.config, self.run = field, config, run
        self.rng = np.random.default_rng([config.seed, 1])
        self.order: list[int] = []
        groups = field.param_groups()
        self.optim = torch.optim.Adam(groups) if groups else None
        self.base_lrs = [g["lr"] for g in groups]

    def step(self, it: int) -> dict[str, float]:
        """One iteration on the next view of a seeded per-epoch permutation."""
        if not self.order:
            self.order = [int(v) for v in self.rng.permutation(self.field.num_views)]
        factor = lr_factor(self.config, it)
        for group, base in zip(self.optim.param_groups, self.base_lrs):
            group["lr"] = base * factor
        self.optim.zero_grad(set_to_none=True)
        loss, parts = self.field.train_step(self.order.pop())
        loss.backward()
        self.optim.step()
        return {"loss": float(loss.detach()), **parts}

    @property
    def checkpoint_path(self) -> Path:
        return self.run.checkpoints_dir / "segment.pt"

    def save(self, it: int) -> None:
        from coseg.io.atomic import write_bytes_atomic

        buf = io.BytesIO()
        torch.save({"iteration": it, "field": self.field.state_dict(), "optim": self.optim.state_dict(),
                    "rng": self.rng.bit_generator.state, "order": self.order,
                    "torch_rng": torch.get_rng_state(), "config": self.config.to_dict()}, buf)
        write_bytes_atomic(self.checkpoint_path, buf.getvalue())

    def load(self) -> int:
        """Restore the last checkpoint; returns its iteration."""
        if not self.checkpoint_path.exists():
            raise InputError(f"{self.run.path}: no segmentation checkpoint to resume from")
        ck = torch.load(self.checkpoint_path, weights_only=False)
        if ck["config"] != self.config.to_dict():
            raise InputError(f"{self.checkpoint_path}: was written with other segmentation settings; "
                             "resume with the same settings or start again without --resume")
        self.field.load_state_dict(ck["field"])
        self.optim.load_state_dict(ck["optim"])
        self.rng.bit_generator.state = ck["rng"]
        self.order = list(ck["order"])
        torch.set_rng_state(ck["torch_rng"])
        return int(ck["iteration"])


def segment(run_dir: str | Path, config: SegmentConfig | None = None, stop_event=None,
            resume: bool = False, overwrite: bool = False) -> Iterator[dict]:
    """Prepare, train and store the configured segmentation field of a built run; yields progress records.

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
        dicts with at least ``stage``; training records add iteration, loss, the
        loss parts, it_per_s, eta_s, elapsed_s.
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
    t_start = time.perf_counter()
    from coseg.segment.sources import training_labels

    source = training_labels(run.path, scene, gaussians, scene.train_cameras, config)
    field = field_class(config.field)(config.field_config, StageInputs(
        run=run, scene=scene, gaussians=gaussians, seed=config.seed, attendance_tau=config.attendance_tau,
        labels=source))
    for rec in field.prepare():
        yield rec
        if stop_event is not None and stop_event.is_set():
            run.update_metrics("segmentation", {"completed": False, "iteration": 0,
                                                "iterations": config.iterations}, replace=True)
            yield {"stage": "stopped", "iteration": 0}
            return
    prepare_s = time.perf_counter() - t_start
    t_train = time.perf_counter()
    if field.trainable:
        trainer = Trainer(field, config, run)
        start_it = trainer.load() if start_as == "resume" else 0
        it = start_it
        for it in range(start_it + 1, config.iterations + 1):
            losses = trainer.step(it)
            if it % config.log_every == 0 or it == config.iterations:
                elapsed = time.perf_counter() - t_train
                rate = (it - start_it) / max(elapsed, 1e-9)
                yield {"stage": "train", "iteration": it, "iterations": config.iterations, **losses,
                       "it_per_s": rate, "eta_s": (config.iterations - it) / max(rate, 1e-9),
                       "elapsed_s": elapsed}
            if stop_event is not None and stop_event.is_set():
                trainer.save(it)
                run.update_metrics("segmentation", {"completed": False, "iteration": it,
                                                    "iterations": config.iterations}, replace=True)
                yield {"stage": "stopped", "iteration": it}
                return
            if it % config.checkpoint_every == 0:
                trainer.save(it)
        trainer.save(it)
    train_s = time.perf_counter() - t_train
    yield {"stage": "infer"}
    from coseg.building.trainer import peak_rss_mb
    from coseg.segment.infer import write_segment_outputs

    with run.writing_results("segmentation") as result:
        summary = write_segment_outputs(run, scene, gaussians, field.kept, field.class_ids, field.infer(),
                                        {**field.info, **source.info}, config.field, result.dir, source.names)
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
