"""Adam with the whole update of a parameter in one numba pass (its twin: `torch.optim.Adam`).

`torch.optim.Adam` (single-tensor path) makes seven passes over every
parameter per step (lerp, mul, addcmul, sqrt, div, add, addcdiv), one thread
each; the Gaussian arrays (N x 59 floats) make that a noticeable share of a
CPU training step. `FusedAdam` computes the same update, element by element,
in one parallel pass:

    m = m + (1 - b1) (g - m);  v = b2 v + (1 - b2) g^2
    p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

Its state is torch's (``step`` as a float32 tensor, ``exp_avg``,
``exp_avg_sq`` per parameter), so checkpoints, `state_dict` /
`load_state_dict` and code that edits the moments (densification, opacity
reset) work unchanged with either optimiser. No weight decay, amsgrad or
maximize (the building stage uses none of them).

A param group may carry ``active_dim1 = k``: only the first k entries along
dimension 1 of its parameter are updated. For entries whose gradient and both
moments are zero, Adam's update is exactly zero, so skipping them changes
nothing; the trainer sets it for the SH bands above the current degree (3/4
of the SH coefficients before degree 1, which receive no gradient yet).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numba as nb
import numpy as np
import torch

_NB = dict(parallel=True, cache=True, nogil=True, fastmath=False)


@nb.njit(**_NB)
def _adam_update(p, g, m, v, beta1, beta2, step_size, bc2_sqrt, eps):
    """One Adam step of the flat arrays p, m, v (in place) with gradient g, all [K].

    Scalars are cast to the arrays' dtype first: mixed float32/float64 arithmetic kept
    the loop from vectorising (5x slower).
    """
    t = p.dtype.type
    one_minus_b1, b2, one_minus_b2 = t(1.0 - beta1), t(beta2), t(1.0 - beta2)
    lr, bc2, e = t(step_size), t(bc2_sqrt), t(eps)
    for i in nb.prange(p.shape[0]):
        gi = g[i]
        mi = m[i] + one_minus_b1 * (gi - m[i])
        vi = b2 * v[i] + one_minus_b2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= lr * mi / (np.sqrt(vi) / bc2 + e)


@nb.njit(**_NB)
def _adam_update_cols(p, g, m, v, cols, beta1, beta2, step_size, bc2_sqrt, eps):
    """`_adam_update` of the first `cols` columns of the [R, W] arrays p, g, m, v."""
    t = p.dtype.type
    one_minus_b1, b2, one_minus_b2 = t(1.0 - beta1), t(beta2), t(1.0 - beta2)
    lr, bc2, e = t(step_size), t(bc2_sqrt), t(eps)
    for r in nb.prange(p.shape[0]):
        for i in range(cols):
            gi = g[r, i]
            mi = m[r, i] + one_minus_b1 * (gi - m[r, i])
            vi = b2 * v[r, i] + one_minus_b2 * gi * gi
            m[r, i] = mi
            v[r, i] = vi
            p[r, i] -= lr * mi / (np.sqrt(vi) / bc2 + e)


class FusedAdam(torch.optim.Optimizer):
    """Adam (Kingma & Ba) for CPU float tensors, one fused numba pass per parameter.

    Args:
        params: parameters or param groups (as for torch.optim.Adam).
        lr, betas, eps: as torch.optim.Adam.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        if lr < 0 or eps < 0 or not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"FusedAdam: invalid lr {lr}, betas {betas} or eps {eps}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D401 - torch's signature
        """One optimisation step over every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse or p.device.type != "cpu":
                    raise ValueError("FusedAdam: dense CPU gradients only")
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = float(state["step"])
                step_size = group["lr"] / (1.0 - beta1 ** t)
                bc2_sqrt = math.sqrt(1.0 - beta2 ** t)
                arrays = (p, p.grad, state["exp_avg"], state["exp_avg_sq"])
                active = group.get("active_dim1")
                if active is not None and p.dim() >= 2 and active < p.shape[1] and p.shape[0] > 0:
                    per = p[0].numel() // p.shape[1]  # entries per index of dimension 1
                    _adam_update_cols(*(_flat(a).reshape(p.shape[0], -1) for a in arrays), int(active) * per,
                                      beta1, beta2, step_size, bc2_sqrt, group["eps"])
                else:
                    _adam_update(*(_flat(a) for a in arrays), beta1, beta2, step_size, bc2_sqrt, group["eps"])
        return loss


def _flat(t: torch.Tensor) -> np.ndarray:
    """A writable 1-D numpy view of a contiguous CPU tensor (no copy)."""
    if not t.is_contiguous():
        raise ValueError("FusedAdam: parameters, gradients and moments must be contiguous")
    return t.detach().numpy().reshape(-1)
