"""One optimisation step of the building stage, shared by the training loop and the time probe.

Order per step (as gsplat): render one training view over the step's
background, photometric loss, backward, Adam step, then densification (when a
strategy is given). The background is the scene's fixed colour or, with
``background="random"`` (the default), a uniform random colour drawn from
(seed, iteration): a pixel that no Gaussian covers then shows a different
colour every step and always costs loss, so uncovered sky or backdrop cannot
hide behind a matching background (official 3DGS ``--random_background``).
Training images with an alpha channel are composited over the same colour,
so their transparent parts train to transparent. Pixels outside the photo
(undistortion borders, the target's ``valid``) are left out of the loss: the
reference stands in for the render there, so they are never trained toward
the step's background (`losses.photometric_loss`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from coseg.building.config import BuildConfig
from coseg.building.losses import photometric_loss
from coseg.building.optim import Params
from coseg.building.strategy import DensifyStrategy
from coseg.scene import Camera, Scene


@dataclass
class TrainingTarget:
    """One training image: premultiplied colour [H, W, 3], alpha [H, W, 1] (None: opaque) and the
    pixels that see the photo, valid [H, W, 1] bool (None: all; False on undistortion borders)."""

    rgb: torch.Tensor
    alpha: torch.Tensor | None
    valid: torch.Tensor | None = None

    @classmethod
    def load(cls, scene: Scene, cam: Camera) -> "TrainingTarget":
        rgb, alpha = scene.load_rgba(cam)
        valid = scene.load_valid_mask(cam)
        return cls(torch.from_numpy(rgb), None if alpha is None else torch.from_numpy(alpha)[..., None],
                   None if valid is None else torch.from_numpy(valid)[..., None])

    def over(self, background: torch.Tensor) -> torch.Tensor:
        """[H, W, 3] the image composited over a [3] background (an opaque image as it is)."""
        if self.alpha is None:
            return self.rgb
        return self.rgb + background * (1.0 - self.alpha)


@dataclass
class View:
    """What a step needs of one training view."""

    target: TrainingTarget
    viewmat: torch.Tensor
    """[4, 4] world-to-camera."""
    K: torch.Tensor
    """[3, 3] intrinsics."""
    width: int
    height: int


def training_background(config: BuildConfig, iteration: int, fixed: torch.Tensor) -> torch.Tensor:
    """[3] background of a step: `fixed`, or with ``background="random"`` a uniform random
    colour that is a pure function of (seed, iteration), so a resumed run draws the same."""
    if config.background != "random":
        return fixed
    rng = np.random.default_rng([config.seed, iteration, 0xB6])
    return torch.from_numpy(rng.random(3).astype(np.float32))


def render_params(params: Params, viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int,
                  sh_degree: int, background: torch.Tensor, backend: str
                  ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Render raw parameters: returns (image [H, W, 3], alpha [H, W, 1], meta).

    On the CPU backend the SH colours are evaluated here from the DC and higher-band
    parameters separately (`sh_colors`), which saves concatenating them every step.
    """
    from coseg.render import rasterization
    from coseg.render._cpu_sh import sh_colors
    from coseg.render.backends import select_backend

    means = params["means"]
    if select_backend(backend, means.device) is None:
        rot = viewmat[:3, :3].to(means.dtype)
        center = -rot.T @ viewmat[:3, 3].to(means.dtype)
        colors, degree = sh_colors(sh_degree, params["sh0"], params["shN"], means, center), None
    else:
        colors, degree = torch.cat([params["sh0"], params["shN"]], dim=1), sh_degree
    return rasterization(means, params["quats"], torch.exp(params["scales"]),
                         torch.sigmoid(params["opacities"]), colors, viewmat, K, width, height,
                         sh_degree=degree, backgrounds=background, backend=backend)


@dataclass
class StepResult:
    """What one step measured."""

    loss: torch.Tensor
    l1: torch.Tensor
    ssim: torch.Tensor
    raster_s: float
    """Wall time of rasterisation forward + backward."""
    changed: dict[str, int]
    """Densification counts ({} without a strategy)."""


def optimisation_step(params: Params, optimizer: torch.optim.Optimizer, view: View, background: torch.Tensor,
                      sh_degree: int, config: BuildConfig, iteration: int,
                      strategy: DensifyStrategy | None = None, state: dict | None = None,
                      extent: float = 1.0) -> StepResult:
    """Render, loss, backward, Adam step and (with a strategy) densification of one view.

    Args:
        params, optimizer: updated in place (densification may replace the tensors).
        view: the training view; background: [3] colour behind the Gaussians this step.
        sh_degree: SH degree rendered this step. config: the (resolved) settings.
        iteration: 1-based step number. strategy, state, extent: densification policy,
            its statistics and the scene extent (None: no densification, as in the time probe).
    """
    t0 = time.perf_counter()
    img, _, meta = render_params(params, view.viewmat, view.K, view.width, view.height, sh_degree,
                                 background, config.backend)
    raster_s = time.perf_counter() - t0
    info = {**meta, "width": view.width, "height": view.height}
    loss, l1_value, ssim_value = photometric_loss(img, view.target.over(background), config.lambda_l1,
                                                  view.target.valid, fused=config.fused)
    if strategy is not None:
        strategy.step_pre_backward(params, optimizer, state, iteration, info)
    grad_at: list[float] = []
    img.register_hook(lambda g: grad_at.append(time.perf_counter()))
    loss.backward()
    t_back_end = time.perf_counter()
    raster_s += t_back_end - (grad_at[0] if grad_at else t_back_end)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    changed: dict[str, int] = {}
    if strategy is not None:
        changed = strategy.step_post_backward(params, optimizer, state, iteration, info, extent)
    return StepResult(loss.detach(), l1_value.detach(), ssim_value.detach(), raster_s, changed)
