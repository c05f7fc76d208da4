"""The Gaussian Building Stage training loop, as a generator of progress records.

`train` optimises the Gaussians of a scene with the 3DGS recipe (see
`coseg.building.config`) and yields one record per step. Between two steps
it honours a stop request (a `threading.Event`): the step in progress
finishes, a checkpoint and ``metrics.json`` (``"completed": false``) are
written and a final record with ``event == "stopped"`` is yielded;
``gaussians.ply`` is only written by a completed build. Resuming
(``resume=True``) continues from the newest checkpoint bit-for-bit: the view
order is a pure function of (seed, epoch), learning rates of the iteration, and
the parameters, Adam moments, densification statistics and RNG states come
from the checkpoint.

The scene is moved into the run's working frame first (`coseg.normalize`;
recorded in config.json, checkpoints stay in it) and gaussians.ply is written
back in the input's frame.

Progress record keys: ``event`` ("step", "stopped", "done"), ``iteration``,
``iterations``, ``loss``, ``l1``, ``ssim``, ``psnr`` (held training view, every
``log_every`` steps and at the end, else None), ``num_gaussians``,
``sh_degree``, ``its_per_s``, ``eta_s``, ``elapsed_s`` (wall), ``cpu_s``
(process CPU time, all threads: comparable across machine loads), ``raster_s`` and
``rest_s`` (cumulative time in rasterisation forward+backward vs everything
else), ``raster_share``, ``densify`` (counts of the last densification).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import resource
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from coseg.building.budget import BudgetClock, plan_budget, probe_step_cost
from coseg.building.checkpoint import load_latest_checkpoint, restore_rng_states, save_checkpoint
from coseg.building.config import BuildConfig
from coseg.building.farfield import far_field_gaussians
from coseg.building.init import init_gaussians
from coseg.building.optim import (create_optimizer, create_params, means_lr, params_to_gaussians,
                                  set_active_sh_bands, set_means_lr)
from coseg.building.step import TrainingTarget, View, optimisation_step, render_params, training_background
from coseg.building.strategy import DensifyStrategy
from coseg.errors import InputError
from coseg.gaussians import Gaussians
from coseg.normalize import Similarity, canonical_frame
from coseg.run import RunDir
from coseg.scene import Scene

log = logging.getLogger(__name__)


def check_training_scene(scene: Scene) -> None:
    """Raise InputError unless the scene has >= 2 training views of one size."""
    cams = scene.train_cameras
    if len(cams) < 2:
        raise InputError(f"{scene.root}: {len(cams)} training view(s); building needs at least 2")
    sizes = {(c.width, c.height) for c in cams}
    if len(sizes) > 1:
        first = cams[0]
        other = next(c for c in cams if (c.width, c.height) != (first.width, first.height))
        raise InputError(f"{scene.root}: training images have mixed sizes ({first.name}: "
                         f"{first.width}x{first.height}, {other.name}: {other.width}x{other.height}); "
                         f"building needs one size")


def view_index(iteration: int, n_views: int, seed: int) -> int:
    """Training view of a 1-based iteration: a seeded permutation per epoch."""
    epoch, pos = divmod(iteration - 1, n_views)
    return int(np.random.default_rng([seed, epoch]).permutation(n_views)[pos])


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (getrusage, Linux KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def initial_model(scene: Scene, views: list[View], config: BuildConfig, extent: float,
                  background: torch.Tensor) -> tuple[Gaussians, torch.Tensor, dict[str, Any]]:
    """The initial Gaussians (`init_gaussians`) followed by the far-field sphere (`farfield`).

    Returns:
        (gaussians, far [N] bool flags of the far-field ones, the init report with "far_field").
    """
    gaussians, report = init_gaussians(scene, config, extent)
    far = far_field_gaussians(scene.train_cameras, [v.target.over(background).numpy() for v in views],
                              extent, config.far_field_spacing, config.far_field_radius, config.init_opacity,
                              config.max_sh_degree,
                              [None if v.target.valid is None else v.target.valid[..., 0].numpy() for v in views])
    report["far_field"] = 0 if far is None else len(far)
    is_far = torch.zeros(len(gaussians), dtype=torch.bool)
    if far is not None:
        gaussians = Gaussians.concatenate([gaussians, far])
        is_far = torch.cat([is_far, torch.ones(len(far), dtype=torch.bool)])
    return gaussians, is_far, report


def train(scene: Scene, config: BuildConfig, run_dir: str | Path | RunDir,
          stop_event: threading.Event | None = None, *, resume: bool = False, overwrite: bool = False
          ) -> Iterator[dict[str, Any]]:
    """Optimise Gaussians for `scene`, yielding one progress record per step.

    ``gaussians.ply`` is written only when training completes; a stopped run
    keeps its checkpoint (and any earlier result) instead (docs/data-safety.md).

    Args:
        scene: the scene (>= 2 training views of one size).
        config: building settings (ignored on resume: the checkpoint's are used).
        run_dir: run folder; config.json is written (or its building section
            replaced) before the first step.
        stop_event: when set, training stops after the current step with a checkpoint.
        resume: continue from the newest checkpoint in the run folder (a completed
            build yields its "done" record and writes nothing).
        overwrite: start afresh in a run that already has a building result or an
            unfinished build (kept in ``previous/`` until the new result is complete).

    Yields:
        Progress records (see module docstring).
    """
    check_training_scene(scene)
    threads = torch.get_num_threads()
    try:
        yield from _train(scene, config, run_dir, stop_event, resume, overwrite)
    finally:
        torch.set_num_threads(threads)


def _working_scene(scene: Scene, run: RunDir, ckpt: dict | None) -> tuple[Scene, Similarity]:
    """The scene in the run's working frame: a fresh build chooses and records it, a resumed one
    keeps its checkpoint's (identity for checkpoints written before the working frame existed)."""
    if ckpt is None:
        frame = canonical_frame(scene.train_cameras, scene.points_xyz)
        run.update_config("frame", frame.to_dict())
    else:
        recorded = ckpt["extra"].get("frame")
        frame = Similarity.identity() if recorded is None else Similarity.from_dict(recorded)
    return frame.apply_scene(scene), frame


def _train(scene: Scene, config: BuildConfig, run_dir: str | Path | RunDir,
           stop_event: threading.Event | None, resume: bool, overwrite: bool) -> Iterator[dict[str, Any]]:
    from coseg.io.ply import write_gaussians_ply
    from coseg.render import camera_tensors

    wall_start = time.perf_counter()
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    ckpt = None
    if resume or run.config_path.exists():
        run = RunDir.open(run.path)
    else:
        run = RunDir.create(run.path, scene.root, reading=scene.reading)
    start_as = run.start_stage("building", overwrite=overwrite, resume=resume)
    if start_as == "complete":
        summary = run.read_metrics()["building"]
        yield {"event": "done", "iteration": summary.get("iterations", 0), "iterations": summary.get("iterations", 0),
               "loss": None, "psnr": summary.get("train_view_psnr"), "num_gaussians": summary.get("num_gaussians"),
               "summary": summary}
        return
    if start_as == "resume":
        ckpt = load_latest_checkpoint(run.checkpoints_dir)
        # checkpoints from before the random background trained over the scene's colour
        config = BuildConfig.from_dict({"background": "scene", **ckpt["extra"]["config"]})
    scene, frame = _working_scene(scene, run, ckpt)
    extent = ckpt["extra"]["extent"] if ckpt is not None else scene.extent()
    cams = scene.train_cameras
    width, height = cams[0].width, cams[0].height
    views = [View(TrainingTarget.load(scene, c), *camera_tensors(c), width, height) for c in cams]
    background = torch.ones(3) if scene.white_background else torch.zeros(3)
    held = views[0]
    train_pixels = width * height * len(cams)
    budgeted = ckpt is None and config.minutes is not None
    user_config = config
    config = config.resolved(train_pixels, len(cams))
    if config.torch_threads > 0:
        torch.set_num_threads(config.torch_threads)

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    budget_report = None
    if ckpt is None:
        gaussians, is_far, init_report = initial_model(scene, views, config, extent, background)
        params = create_params(gaussians, config.max_sh_degree)
        config = user_config.resolved(train_pixels, len(cams), initial=len(gaussians))
        if budgeted:
            cost, probe = probe_step_cost(params, config, views, background)
            config, budget_report = plan_budget(user_config, cost, len(gaussians),
                                                time.perf_counter() - wall_start, train_pixels)
            config = config.resolved(train_pixels, len(cams), initial=len(gaussians))
            budget_report.update(probe)
        optimizer = create_optimizer(params, config, extent)
        strategy = DensifyStrategy.from_config(config)
        state = strategy.initialize_state(len(gaussians), far=is_far)
        start, elapsed0, raster0, rest0, cpu0 = 0, 0.0, 0.0, 0.0, 0.0
        section = {"source": "train", "settings": config.to_dict(), "extent": extent, "init": init_report}
        if budget_report is not None:
            section["budget"] = budget_report
        run.update_config("building", section)
    else:
        params = {k: torch.nn.Parameter(v) for k, v in ckpt["params"].items()}
        optimizer = create_optimizer(params, config, extent)
        optimizer.load_state_dict(ckpt["optimizer"])
        strategy = DensifyStrategy.from_config(config)
        state = ckpt["strategy_state"]
        for key, value in strategy.initialize_state(params["means"].shape[0]).items():
            state.setdefault(key, value)  # checkpoints from before the far-field flags
        restore_rng_states(ckpt["rng"])
        start = ckpt["iteration"]
        elapsed0, raster0, rest0, cpu0 = (ckpt["extra"][k] for k in ("elapsed_s", "raster_s", "rest_s", "cpu_s"))
        log.info("resuming %s from iteration %d", run.path, start)
    log.info("training %d iterations, cap %d Gaussians, densification every %d steps in (%d, %d], "
             "background %s", config.iterations, config.max_gaussians, config.densify_interval,
             config.densify_start, config.densify_stop, config.background)

    def held_psnr() -> float:
        with torch.no_grad():
            img, _, _ = render_params(params, held.viewmat, held.K, width, height,
                                      min(sh_degree, config.max_sh_degree), background, config.backend)
            err = (img.clamp(0, 1) - held.target.over(background)) ** 2
            valid = held.target.valid
            mse = (err.mean() if valid is None else err[valid.expand_as(err)].mean()).item()
        return float(-10.0 * np.log10(max(mse, 1e-12)))

    def save(iteration: int) -> None:
        extra = {"config": config.to_dict(), "extent": extent, "frame": frame.to_dict(), "elapsed_s": elapsed,
                 "raster_s": raster_s, "rest_s": rest_s, "cpu_s": cpu0 + time.process_time() - cpu_start}
        save_checkpoint(run.checkpoints_dir, iteration, params, optimizer, state, extra,
                        keep=config.keep_checkpoints)

    elapsed, raster_s, rest_s = elapsed0, raster0, rest0
    cpu_start = time.process_time()
    recent: deque[float] = deque(maxlen=50)
    densify: dict[str, int] = {}
    iteration = start
    sh_degree = min(max(start - 1, 0) // config.sh_interval, config.max_sh_degree)
    record: dict[str, Any] = {"event": "step", "iteration": start, "iterations": config.iterations,
                              "loss": None, "psnr": None, "num_gaussians": int(params["means"].shape[0])}
    stopped = False
    clock = BudgetClock(config, wall_start) if budget_report is not None and not budget_report["iterations_kept"] \
        else None
    while iteration < config.iterations:
        iteration += 1
        t_start = time.perf_counter()
        sh_degree = min((iteration - 1) // config.sh_interval, config.max_sh_degree)
        set_means_lr(optimizer, means_lr(iteration, config, extent))
        set_active_sh_bands(optimizer, sh_degree)
        idx = view_index(iteration, len(cams), config.seed)

        bg = training_background(config, iteration, background)
        result = optimisation_step(params, optimizer, views[idx], bg, sh_degree, config, iteration,
                                   strategy, state, extent)
        t_raster = result.raster_s
        if any(result.changed.values()):
            densify = result.changed
            log.debug("iteration %d: %s, %d Gaussians", iteration, densify, params["means"].shape[0])

        step_s = time.perf_counter() - t_start
        elapsed += step_s
        raster_s += t_raster
        rest_s += step_s - t_raster
        recent.append(step_s)
        its = len(recent) / sum(recent)
        if clock is not None:
            replanned = clock.tick(iteration, int(params["means"].shape[0]), time.perf_counter())
            if replanned is not None:
                config = dataclasses.replace(config, iterations=replanned)
        if iteration % config.checkpoint_every == 0:
            save(iteration)
        stopped = stop_event is not None and stop_event.is_set() and iteration < config.iterations
        final = stopped or iteration == config.iterations
        record = {
            "event": "step", "iteration": iteration, "iterations": config.iterations,
            "loss": result.loss.item(), "l1": result.l1.item(), "ssim": result.ssim.item(),
            "psnr": held_psnr() if (iteration % config.log_every == 0 or final) else None,
            "num_gaussians": int(params["means"].shape[0]), "sh_degree": sh_degree,
            "its_per_s": its, "eta_s": (config.iterations - iteration) / its, "elapsed_s": elapsed,
            "raster_s": raster_s, "rest_s": rest_s, "cpu_s": cpu0 + time.process_time() - cpu_start,
            "raster_share": raster_s / max(raster_s + rest_s, 1e-9), "densify": densify,
        }
        if final:
            break
        yield record

    if iteration % config.checkpoint_every != 0 and iteration > start:
        save(iteration)
    if clock is not None and clock.replans:  # config.json states the iterations the run had at its end
        run.update_config("building", {**section, "settings": config.to_dict(),
                                       "budget": {**budget_report, "replans": clock.replans}})
    gaussians = frame.inverse().apply_gaussians(params_to_gaussians(params))
    summary = {
        "completed": not stopped and iteration >= config.iterations, "iterations": iteration,
        "num_gaussians": len(gaussians), "train_time_s": elapsed, "raster_s": raster_s,
        "rest_s": rest_s, "raster_share": raster_s / max(raster_s + rest_s, 1e-9),
        "train_cpu_s": cpu0 + time.process_time() - cpu_start,
        "its_per_s": iteration / max(elapsed, 1e-9), "peak_rss_mb_train": peak_rss_mb(),
        "train_view_psnr": record.get("psnr"),
    }
    if budget_report is not None:
        summary["budget"] = {**{k: budget_report[k] for k in ("minutes", "predicted_total_s", "iterations",
                                                             "max_gaussians")},
                             "replans": [] if clock is None else clock.replans, "iterations_run": iteration,
                             "actual_total_s": time.perf_counter() - wall_start}
    if stopped:  # the checkpoint is the resume point; a partial model is no result
        run.update_metrics("building", summary, replace=True)
        log.info("stopped after %d iterations (checkpoint kept): resume to finish", iteration)
    else:
        with run.writing_results("building") as result:  # earlier eval figures are stale now
            write_gaussians_ply(gaussians, result.dir / "gaussians.ply")
            result.metrics = summary
        log.info("finished after %d iterations: %d Gaussians, %.1f s; wrote %s",
                 iteration, len(gaussians), elapsed, run.gaussians_path)
    yield {**record, "event": "stopped" if stopped else "done", "summary": summary}
