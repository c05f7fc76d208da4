"""Densification strategy of 3DGS as a small dataclass (gsplat-style).

The trainer owns the loop and calls, around ``loss.backward()``:

- `DensifyStrategy.step_pre_backward`: keeps the gradient of the projected
  means (``meta["means2d"].retain_grad()``);
- `DensifyStrategy.step_post_backward`: accumulates the view-space gradient
  statistics and, on schedule, clones / splits / prunes Gaussians and resets
  opacities, editing the parameters and their Adam moments in place.

View-space gradient: the gradient of the loss w.r.t. the pixel coordinates of
the projected mean, multiplied per axis by (W / 2, H / 2) — the derivative of
pixels w.r.t. NDC — so the 3DGS threshold 2e-4 (NDC units) applies
unchanged. Its norm is averaged over the steps in which the Gaussian was
visible (radius > 0).

Growth (every `interval` steps in (start, stop]): Gaussians with a mean
gradient above `grow_grad2d` are cloned when small (largest scale <=
`grow_scale3d` x extent) and split into two when large (positions sampled from
the Gaussian, scales / 1.6). With a cap on the count, the highest-gradient
candidates grow first. Pruning at the same steps: opacity < `prune_opacity`;
after the first opacity reset also largest scale > `prune_scale3d` x extent or
screen radius > `prune_scale2d` x max(W, H). Opacity reset (every
`reset_interval` steps before `stop`): opacities clamped to 2 x
`prune_opacity` (3DGS resets to 0.01).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from coseg.building.config import BuildConfig
from coseg.building.optim import Params, update_params

log = logging.getLogger(__name__)


@dataclass
class DensifyStrategy:
    """Clone / split / prune / opacity-reset policy (see module docstring)."""

    start: int = 500
    """Densification happens at steps > start ..."""
    stop: int = 15_000
    """... and <= stop; opacity resets also stop here."""
    interval: int = 100
    """Steps between densifications."""
    reset_interval: int = 3_000
    """Steps between opacity resets."""
    grow_grad2d: float = 2e-4
    """Mean view-space gradient (NDC units) above which a Gaussian grows."""
    grow_scale3d: float = 0.01
    """Clone when largest scale <= this x extent, else split."""
    prune_opacity: float = 0.005
    """Opacity below which a Gaussian is pruned."""
    prune_scale3d: float = 0.1
    """World-size pruning threshold (x extent), after the first reset."""
    prune_scale2d: float = 0.15
    """Screen-size pruning threshold (fraction of max(W, H)), after the first reset."""
    max_gaussians: int = 60_000
    """Growth never takes the count above this."""

    @classmethod
    def from_config(cls, config: BuildConfig) -> "DensifyStrategy":
        """The strategy of a (resolved) build configuration."""
        c = config.resolved()
        return cls(start=c.densify_start, stop=c.densify_stop, interval=c.densify_interval,
                   reset_interval=c.opacity_reset_interval, grow_grad2d=c.grow_grad2d,
                   grow_scale3d=c.grow_scale3d, prune_opacity=c.prune_opacity,
                   prune_scale3d=c.prune_scale3d, prune_scale2d=c.prune_scale2d,
                   max_gaussians=c.max_gaussians)

    def initialize_state(self, n: int) -> dict[str, torch.Tensor]:
        """Fresh statistics for n Gaussians: grad2d [N], count [N], radii [N] (fraction of image)."""
        return {"grad2d": torch.zeros(n), "count": torch.zeros(n), "radii": torch.zeros(n)}

    def step_pre_backward(self, params: Params, optimizer: torch.optim.Optimizer,
                          state: dict[str, torch.Tensor], step: int, info: dict[str, Any]) -> None:
        """Keep the gradient of ``info["means2d"]`` [N, 2] for the statistics."""
        if step <= self.stop and info["means2d"].requires_grad:
            info["means2d"].retain_grad()

    def step_post_backward(self, params: Params, optimizer: torch.optim.Optimizer,
                           state: dict[str, torch.Tensor], step: int, info: dict[str, Any],
                           extent: float) -> dict[str, int]:
        """Update statistics; densify / prune / reset on schedule.

        Args:
            params, optimizer: edited in place when the Gaussian set changes.
            state: statistics from `initialize_state`, replaced in place.
            step: 1-based iteration that just ran backward.
            info: the renderer's meta plus ``width`` and ``height`` of the view.
            extent: scene extent (world units).

        Returns:
            Counts of what changed: {"cloned", "split", "pruned", "reset"}.
        """
        done = {"cloned": 0, "split": 0, "pruned": 0, "reset": 0}
        if step > self.stop:
            return done
        self._update_state(state, info)
        if step > self.start and step % self.interval == 0:
            done["cloned"], done["split"] = self._grow(params, optimizer, state, extent)
            done["pruned"] = self._prune(params, optimizer, state, step, extent)
            state.update(self.initialize_state(params["means"].shape[0]))
        if step % self.reset_interval == 0:
            self._reset_opacities(params, optimizer)
            done["reset"] = 1
        return done

    # ------------------------------------------------------------ internals
    def _update_state(self, state: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        grad = info["means2d"].grad
        if grad is None:
            return
        w, h = info["width"], info["height"]
        grad = grad.detach() * torch.tensor([w / 2.0, h / 2.0], dtype=grad.dtype)
        visible = info["radii"] > 0
        state["grad2d"][visible] += grad[visible].norm(dim=-1)
        state["count"][visible] += 1
        radii = info["radii"][visible].float() / float(max(w, h))
        state["radii"][visible] = torch.maximum(state["radii"][visible], radii)

    def _grow(self, params: Params, optimizer: torch.optim.Optimizer,
              state: dict[str, torch.Tensor], extent: float) -> tuple[int, int]:
        n = params["means"].shape[0]
        avg = state["grad2d"] / state["count"].clamp_min(1.0)
        high = (avg > self.grow_grad2d) & (state["count"] > 0)
        budget = self.max_gaussians - n
        if budget <= 0 or not bool(high.any()):
            return 0, 0
        if int(high.sum()) > budget:
            # Highest gradients first; ties broken by index (stable sort) for determinism.
            order = torch.sort(torch.where(high, avg, torch.full_like(avg, -1.0)), descending=True,
                               stable=True).indices
            high = torch.zeros_like(high)
            high[order[:budget]] = True
        small = torch.exp(params["scales"].detach()).amax(dim=-1) <= self.grow_scale3d * extent
        clone_idx = torch.nonzero(high & small).squeeze(1)
        split_idx = torch.nonzero(high & ~small).squeeze(1)
        keep = torch.ones(n, dtype=torch.bool)
        keep[split_idx] = False
        children = _split_children(params, split_idx)
        n_new = clone_idx.numel() + 2 * split_idx.numel()

        def param_fn(name: str, p: torch.Tensor) -> torch.Tensor:
            return torch.cat([p[keep], p[clone_idx], children[name]])

        def state_fn(_: str, v: torch.Tensor) -> torch.Tensor:
            return torch.cat([v[keep], torch.zeros((n_new, *v.shape[1:]), dtype=v.dtype)])

        update_params(params, optimizer, param_fn, state_fn)
        radii = state["radii"]
        state["radii"] = torch.cat([radii[keep], radii[clone_idx], radii[split_idx].repeat(2)])
        return int(clone_idx.numel()), int(split_idx.numel())

    def _prune(self, params: Params, optimizer: torch.optim.Optimizer,
               state: dict[str, torch.Tensor], step: int, extent: float) -> int:
        prune = torch.sigmoid(params["opacities"].detach()) < self.prune_opacity
        if step > self.reset_interval:
            too_big = torch.exp(params["scales"].detach()).amax(dim=-1) > self.prune_scale3d * extent
            prune |= too_big | (state["radii"] > self.prune_scale2d)
        n_prune = int(prune.sum())
        if n_prune == 0:
            return 0
        if n_prune == prune.numel():
            log.warning("step %d: every Gaussian met a pruning rule; keeping them all", step)
            return 0
        keep = ~prune
        update_params(params, optimizer, lambda _, p: p[keep], lambda _, v: v[keep])
        state["radii"] = state["radii"][keep]
        return n_prune

    def _reset_opacities(self, params: Params, optimizer: torch.optim.Optimizer) -> None:
        ceiling = torch.logit(torch.tensor(2.0 * self.prune_opacity)).item()
        opacities = params["opacities"]
        with torch.no_grad():
            opacities.clamp_(max=ceiling)
        # 3DGS replaces the opacity tensor and zeroes its Adam moments.
        st = optimizer.state.get(opacities)
        if st:
            st["exp_avg"].zero_()
            st["exp_avg_sq"].zero_()


def _split_children(params: Params, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """Two children per split Gaussian: positions sampled from it, scales / 1.6.

    Returns:
        name -> [2M, ...] new raw values (children of Gaussian idx[j] at j and M + j).
    """
    means = params["means"].detach()[idx]
    scales = torch.exp(params["scales"].detach()[idx])
    q = torch.nn.functional.normalize(params["quats"].detach()[idx], dim=-1)
    w, x, y, z = q.unbind(-1)
    rot = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(-1, 3, 3)
    samples = torch.randn(2, idx.numel(), 3) * scales
    offsets = torch.einsum("mij,bmj->bmi", rot, samples)
    out = {"means": (means + offsets).reshape(-1, 3),
           "scales": torch.log(scales / 1.6).repeat(2, 1)}
    for name in ("quats", "opacities", "sh0", "shN"):
        p = params[name].detach()[idx]
        out[name] = p.repeat(2, *([1] * (p.dim() - 1)))
    return out
