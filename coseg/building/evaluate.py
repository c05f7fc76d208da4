"""Evaluation and rendering of a run's Gaussians (``coseg eval`` / ``coseg render``).

Both are tables of named functions so later stages add their own:

- `RENDER_OUTPUTS`: ``what`` -> function(ctx, camera) -> image array written as
  one PNG per view. Built in: ``rgb`` (8-bit colour) and ``depth`` (16-bit PNG of
  the expected z-depth in millimetres, 0 where the pixel's alpha < 0.5, clipped
  at 65.535 m; read back with depth_scale 0.001 like ScanNet/Replica depth).
- `METRIC_SECTIONS`: section name -> function(run, scene, backend) -> dict of
  metrics merged into that section of metrics.json, or None when the section
  does not apply to the run yet. Built in: ``building``.

A `RenderContext` carries what the functions share (run, scene, Gaussians and
their render tensors, background, backend) and a ``cache`` dict for a stage's
own lazily loaded data (e.g. segment ids).
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from coseg.errors import InputError
from coseg.gaussians import Gaussians
from coseg.normalize import Similarity
from coseg.run import RunDir
from coseg.scene import Camera, Scene

log = logging.getLogger(__name__)


@dataclass
class RenderContext:
    """What the render-output functions share for one run and scene."""

    run: RunDir
    scene: Scene
    gaussians: Gaussians
    tensors: dict[str, torch.Tensor]
    """coseg.render.gaussian_tensors of the model (means, quats, scales, opacities, sh)."""
    background: torch.Tensor
    """[3] background colour."""
    backend: str = "auto"
    frame: Similarity = field(default_factory=Similarity.identity)
    """The run's working frame: `tensors` are in it and `render` moves each camera into it."""
    cache: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, run: RunDir, scene: Scene, backend: str = "auto") -> "RenderContext":
        """Context for a run whose gaussians.ply exists."""
        from coseg.normalize import run_frame
        from coseg.render import gaussian_tensors

        gaussians = load_run_gaussians(run)
        frame = run_frame(run, scene)
        background = torch.ones(3) if scene.white_background else torch.zeros(3)
        return cls(run, scene, gaussians, gaussian_tensors(frame.apply_gaussians(gaussians)), background,
                   backend, frame)

    def render(self, cam: Camera, render_depth: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Render the model from `cam`: (image [H, W, 3], alpha [H, W, 1], meta)."""
        from coseg.render import camera_tensors, rasterization

        t = self.tensors
        viewmat, K = camera_tensors(self.frame.apply_camera(cam))
        with torch.no_grad():
            return rasterization(t["means"], t["quats"], t["scales"], t["opacities"], t["sh"],
                                 viewmat, K, cam.width, cam.height, sh_degree=self.gaussians.sh_degree,
                                 backgrounds=self.background, render_depth=render_depth,
                                 backend=self.backend)


def load_run_gaussians(run: RunDir) -> Gaussians:
    """The run's building result; a clear error when the stage has not produced it."""
    from coseg.io.ply import read_gaussians_ply

    if not run.gaussians_path.exists():
        raise InputError(f"{run.gaussians_path}: missing; run `coseg build` for this run first")
    return read_gaussians_ply(run.gaussians_path)


def render_rgb(ctx: RenderContext, cam: Camera) -> np.ndarray:
    """[H, W, 3] float32 colour in [0, 1]."""
    img, _, _ = ctx.render(cam)
    return img.clamp(0.0, 1.0).numpy()


def render_depth(ctx: RenderContext, cam: Camera) -> np.ndarray:
    """[H, W] uint16 expected z-depth in millimetres (0 where alpha < 0.5)."""
    _, alpha, meta = ctx.render(cam, render_depth=True)
    depth = meta["depth"][..., 0].numpy().astype(np.float64) / ctx.frame.scale  # input units
    mm = np.clip(np.round(depth * 1000.0), 0, 65535)
    mm[alpha[..., 0].numpy() < 0.5] = 0
    return mm.astype(np.uint16)


#: what -> function(ctx, camera) -> image; `coseg render --what` offers these keys.
RENDER_OUTPUTS: dict[str, Callable[[RenderContext, Camera], np.ndarray]] = {
    "rgb": render_rgb,
    "depth": render_depth,
}

#: Modules of later stages imported before RENDER_OUTPUTS / METRIC_SECTIONS are used;
#: on import each adds its entries to those dicts (one line per stage).
EXTENSION_MODULES: list[str] = ["coseg.segment.outputs"]


def load_extensions() -> None:
    """Import the `EXTENSION_MODULES` so their outputs and metric sections are registered."""
    for name in EXTENSION_MODULES:
        importlib.import_module(name)


def split_cameras(scene: Scene, split: str) -> list[Camera]:
    """Cameras of a split; a clear error when it is empty."""
    cams = scene.split(split)  # type: ignore[arg-type]
    if not cams:
        raise InputError(f"{scene.root}: the scene has no {split} views")
    return cams


def render_views(ctx: RenderContext, cameras: list[Camera], what: str, out_dir: str | Path,
                 progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Write one PNG per camera, named by the image stem, of the output `what`.

    Args:
        ctx: the run's render context.
        cameras: views to render.
        what: a key of `RENDER_OUTPUTS`.
        out_dir: destination folder (created).
        progress: called with (done, total) after each view.

    Returns:
        The written paths.
    """
    from coseg.io.images import write_png

    load_extensions()
    if what not in RENDER_OUTPUTS:
        raise InputError(f"--what {what}: unknown output (choose from {', '.join(RENDER_OUTPUTS)})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, cam in enumerate(cameras):
        path = out_dir / f"{cam.name}.png"
        write_png(path, RENDER_OUTPUTS[what](ctx, cam))
        paths.append(path)
        if progress is not None:
            progress(k + 1, len(cameras))
    return paths


def evaluate_building(run: RunDir, scene: Scene, backend: str = "auto") -> dict[str, Any]:
    """Test-view image quality and cost of the building result.

    Returns:
        {"split", "num_views", "psnr" (mean over views), "psnr_min" (worst view),
         "psnr_per_view" ({view name: dB}), "ssim", "lpips", "num_gaussians", "render_fps",
         "peak_rss_mb_eval"} plus the training time and peak memory recorded by
        training when present (metrics.json). LPIPS is None: no offline weights.
    """
    from coseg.building.trainer import peak_rss_mb
    from coseg.metrics import psnr, ssim, ssim_map

    ctx = RenderContext.load(run, scene, backend)
    split = "test"
    cams = scene.test_cameras
    if not cams:
        log.warning("%s has no test views; evaluating on the training views", scene.root)
        split, cams = "train", scene.train_cameras
    psnrs, ssims, seconds = [], [], 0.0
    for cam in cams:
        t0 = time.perf_counter()
        img = render_rgb(ctx, cam)
        seconds += time.perf_counter() - t0
        ref = scene.load_image(cam)
        valid = scene.load_valid_mask(cam)
        if valid is None:
            psnrs.append(float(psnr(img, ref)))
            ssims.append(float(ssim(img, ref)))
        else:  # only pixels that see the photo count (undistortion borders do not)
            psnrs.append(float(psnr(img[valid], ref[valid])))
            ssims.append(float(ssim_map(np.where(valid[..., None], img, ref), ref)[valid].mean()))
    trained = run.read_metrics().get("building", {})
    return {
        "split": split, "num_views": len(cams),
        "psnr": float(np.mean(psnrs)), "psnr_min": float(np.min(psnrs)),
        "psnr_per_view": {cam.name: round(p, 3) for cam, p in zip(cams, psnrs)},
        "ssim": float(np.mean(ssims)), "lpips": None,
        "num_gaussians": len(ctx.gaussians), "render_fps": len(cams) / max(seconds, 1e-9),
        "train_time_s": trained.get("train_time_s"), "peak_rss_mb_train": trained.get("peak_rss_mb_train"),
        "peak_rss_mb_eval": peak_rss_mb(),
    }


#: section -> function(run, scene, backend) -> metrics or None; `coseg eval` runs them all.
METRIC_SECTIONS: dict[str, Callable[[RunDir, Scene, str], dict[str, Any] | None]] = {
    "building": evaluate_building,
}
