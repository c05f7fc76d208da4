"""Trainable Gaussian parameters, their Adam optimiser and learning-rate schedule.

Parameters (a dict of ``torch.nn.Parameter``, raw pre-activation values as in
`coseg.gaussians.Gaussians`):

- ``means`` [N, 3], ``quats`` [N, 4] (w, x, y, z), ``scales`` [N, 3] (log),
  ``opacities`` [N] (logit), ``sh0`` [N, 1, 3], ``shN`` [N, K, 3] with
  K = (max_sh_degree + 1)^2 - 1.

One `torch.optim.Adam` holds one param group per parameter (named by the
group's ``"name"``), with the 3DGS learning rates; only the position rate
changes over time (log-linear decay, `means_lr`).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from coseg.building.config import BuildConfig
from coseg.building.fused_adam import FusedAdam
from coseg.gaussians import Gaussians

PARAM_NAMES = ("means", "quats", "scales", "opacities", "sh0", "shN")

Params = dict[str, torch.nn.Parameter]


def create_params(gaussians: Gaussians, max_sh_degree: int) -> Params:
    """Trainable parameters from a Gaussian model; SH bands padded/cut to `max_sh_degree`.

    Args:
        gaussians: the model (N Gaussians).
        max_sh_degree: degree whose (deg + 1)^2 - 1 rest coefficients are trained.
    """
    k = (max_sh_degree + 1) ** 2 - 1
    rest = np.zeros((len(gaussians), k, 3), np.float32)
    m = min(k, gaussians.sh_rest.shape[1])
    rest[:, :m] = gaussians.sh_rest[:, :m]
    arrays = {
        "means": gaussians.means, "quats": gaussians.quats, "scales": gaussians.log_scales,
        "opacities": gaussians.opacity_logits, "sh0": gaussians.sh_dc[:, None, :], "shN": rest,
    }
    return {name: torch.nn.Parameter(torch.from_numpy(np.array(a, np.float32, copy=True)))
            for name, a in arrays.items()}


def params_to_gaussians(params: Params) -> Gaussians:
    """The current parameters as a (detached, numpy) Gaussian model."""
    def arr(name: str) -> np.ndarray:
        return params[name].detach().cpu().numpy().astype(np.float32, copy=True)

    return Gaussians(means=arr("means"), quats=arr("quats"), log_scales=arr("scales"),
                     opacity_logits=arr("opacities"), sh_dc=arr("sh0")[:, 0, :], sh_rest=arr("shN"))


def create_optimizer(params: Params, config: BuildConfig, extent: float) -> torch.optim.Optimizer:
    """Adam with one named param group per parameter and the 3DGS learning rates.

    `FusedAdam` (one numba pass per parameter) unless ``config.fused`` is off; both keep
    the same state, so a checkpoint of one resumes with the other.
    """
    lrs = {
        "means": config.lr_means * extent, "quats": config.lr_quats, "scales": config.lr_scales,
        "opacities": config.lr_opacity, "sh0": config.lr_sh_dc, "shN": config.lr_sh_rest,
    }
    groups = [{"params": [params[n]], "lr": lrs[n], "name": n} for n in PARAM_NAMES]
    if config.fused:
        return FusedAdam(groups, eps=config.adam_eps, betas=(0.9, 0.999))
    # foreach=False: one plain loop per tensor, identical results whatever the group sizes.
    return torch.optim.Adam(groups, eps=config.adam_eps, betas=(0.9, 0.999), foreach=False)


def means_lr(step: int, config: BuildConfig, extent: float) -> float:
    """Position learning rate at `step`: log-linear from lr_means to lr_means_final (x extent)."""
    t = min(max(step / max(config.iterations, 1), 0.0), 1.0)
    lr0, lr1 = config.lr_means * extent, config.lr_means_final * extent
    return math.exp(math.log(lr0) * (1.0 - t) + math.log(lr1) * t)


def set_means_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if group["name"] == "means":
            group["lr"] = lr


def set_active_sh_bands(optimizer: torch.optim.Optimizer, sh_degree: int) -> None:
    """Tell a `FusedAdam` that only the first (deg + 1)^2 - 1 bands of ``shN`` get gradients.

    The bands above the current degree have received no gradient yet (zero moments), so
    their update is exactly zero and the fused step skips them (torch's Adam ignores the key).
    """
    for group in optimizer.param_groups:
        if group["name"] == "shN":
            group["active_dim1"] = (sh_degree + 1) ** 2 - 1


def update_params(params: Params, optimizer: torch.optim.Optimizer,
                  param_fn: Callable[[str, torch.Tensor], torch.Tensor],
                  state_fn: Callable[[str, torch.Tensor], torch.Tensor]) -> None:
    """Replace every parameter (and its Adam moments) after a change of the Gaussian set.

    Args:
        params: the parameter dict, updated in place with new Parameters.
        optimizer: its Adam; the param groups and per-parameter state are moved over.
        param_fn: (name, old value [N, ...]) -> new value [M, ...].
        state_fn: (moment name, old moment [N, ...]) -> new moment [M, ...]
            (e.g. zeros for new Gaussians); the step counter is kept.
    """
    for group in optimizer.param_groups:
        name = group["name"]
        old = group["params"][0]
        new = torch.nn.Parameter(param_fn(name, old.detach()))
        state = optimizer.state.pop(old, None)
        if state is not None:
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key] = state_fn(key, state[key])
            optimizer.state[new] = state
        group["params"] = [new]
        params[name] = new
