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

Far-field Gaussians (`coseg.building.farfield`, flagged in the state's
``far``) are exempt from the two size rules and are pruned instead when no
training pixel blended them for more than `far_stale_steps` steps (the
state's ``last_blended`` step, from the renderer's contribution counts), so a
closed room drops the sphere behind its walls. Their children inherit the flag.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from coseg.building.config import BuildConfig
from coseg.building.optim import Params, update_params
from coseg.errors import CosegError

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
    far_stale_steps: int = 0
    """Far-field Gaussians blended into no pixel for more steps than this are pruned (0: never)."""

    @classmethod
    def from_config(cls, config: BuildConfig) -> "DensifyStrategy":
        """The strategy of a resolved build configuration (`BuildConfig.resolved`)."""
        c = config.resolved()
        if c.max_gaussians is None:
            raise CosegError("building: the Gaussian cap is unresolved (resolve the settings with the "
                             "training pixel count first)")
        return cls(start=c.densify_start, stop=c.densify_stop, interval=c.densify_interval,
                   reset_interval=c.opacity_reset_interval, grow_grad2d=c.grow_grad2d,
                   grow_scale3d=c.grow_scale3d, prune_opacity=c.prune_opacity,
                   prune_scale3d=c.prune_scale3d, prune_scale2d=c.prune_scale2d,
                   max_gaussians=c.max_gaussians, far_stale_steps=c.far_field_stale_steps or 0)

    def initialize_state(self, n: int, far: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Fresh state for n Gaussians: the statistics grad2d [N], count [N], radii [N] (fraction
        of the image), and the far-field flag far [N] bool (default none) with last_blended [N]
        (last step a pixel blended the Gaussian; 0 = not yet)."""
        return {"grad2d": torch.zeros(n), "count": torch.zeros(n), "radii": torch.zeros(n),
                "far": torch.zeros(n, dtype=torch.bool) if far is None else far.clone(),
                "last_blended": torch.zeros(n, dtype=torch.int64)}

    def reset_statistics(self, state: dict[str, torch.Tensor]) -> None:
        """Zero the gradient statistics (after a densification), keeping the per-Gaussian flags."""
        n = state["far"].shape[0]  # already follows the new Gaussian set
        state.update(grad2d=torch.zeros(n), count=torch.zeros(n), radii=torch.zeros(n))

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
        self._update_state(state, info, step)
        if step > self.start and step % self.interval == 0:
            done["cloned"], done["split"] = self._grow(params, optimizer, state, extent)
            done["pruned"] = self._prune(params, optimizer, state, step, extent)
            self.reset_statistics(state)
        if step % self.reset_interval == 0:
            self._reset_opacities(params, optimizer)
            done["reset"] = 1
        return done

    # ------------------------------------------------------------ internals
    def _update_state(self, state: dict[str, torch.Tensor], info: dict[str, Any], step: int) -> None:
        if info.get("contrib") is not None:  # (the inria backend does not count contributions)
            state["last_blended"][info["contrib"] > 0] = step
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
        for key in ("radii", "far", "last_blended"):
            v = state[key]
            state[key] = torch.cat([v[keep], v[clone_idx], v[split_idx].repeat(2)])
        return int(clone_idx.numel()), int(split_idx.numel())

    def _prune(self, params: Params, optimizer: torch.optim.Optimizer,
               state: dict[str, torch.Tensor], step: int, extent: float) -> int:
        prune = torch.sigmoid(params["opacities"].detach()) < self.prune_opacity
        far = state["far"]
        if step > self.reset_interval:
            too_big = torch.exp(params["scales"].detach()).amax(dim=-1) > self.prune_scale3d * extent
            prune |= (too_big | (state["radii"] > self.prune_scale2d)) & ~far
        if self.far_stale_steps > 0 and step > self.far_stale_steps:
            prune |= far & (step - state["last_blended"] > self.far_stale_steps)
        n_prune = int(prune.sum())
        if n_prune == 0:
            return 0
        if n_prune == prune.numel():
            log.warning("step %d: every Gaussian met a pruning rule; keeping them all", step)
            return 0
        keep = ~prune
        update_params(params, optimizer, lambda _, p: p[keep], lambda _, v: v[keep])
        for key in ("radii", "far", "last_blended"):
            state[key] = state[key][keep]
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
