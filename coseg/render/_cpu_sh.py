"""Numba kernels: SH colour evaluation forward and backward (twin: `_sh.eval_sh_colors`).

colour = max(SH(dir) . coeffs + 0.5, 0) per channel, dir = normalise(mean -
camera centre), degrees 0-3 with the 3DGS constants and basis order
(`coseg.render._sh`). The torch version builds a dozen [N] temporaries and a
[N, K, 3] concatenation per view and autograd adds as many again; this is one
pass per direction over the Gaussians, with the DC and the higher-band
coefficients as separate inputs (no concatenation).

Backward: dL/dcoeff[k, c] = basis_k * g_c where g_c is the colour gradient
passed by the clamp (torch's rule: where the unclamped value >= 0), zero for
the bands above the degree; dL/dmean through the direction:
dL/dv = (dL/ddir - (dL/ddir . dir) dir) / |v| with v = mean - centre (and no
mean gradient at degree 0, where the colour does not depend on the direction).
Arithmetic is float64 per Gaussian; outputs in the inputs' dtype.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
import torch

from coseg.render._sh import SH_C0, SH_C1, SH_C2, SH_C3

_NB = dict(parallel=True, cache=True, nogil=True)
_C2 = np.array(SH_C2)
_C3 = np.array(SH_C3)


@nb.njit(inline="always")
def _basis(degree, x, y, z, b):
    """b[0:(degree+1)^2] = the real SH basis at unit direction (x, y, z)."""
    b[0] = SH_C0
    if degree < 1:
        return
    b[1] = -SH_C1 * y
    b[2] = SH_C1 * z
    b[3] = -SH_C1 * x
    if degree < 2:
        return
    xx, yy, zz = x * x, y * y, z * z
    b[4] = _C2[0] * x * y
    b[5] = _C2[1] * y * z
    b[6] = _C2[2] * (2.0 * zz - xx - yy)
    b[7] = _C2[3] * x * z
    b[8] = _C2[4] * (xx - yy)
    if degree < 3:
        return
    b[9] = _C3[0] * y * (3.0 * xx - yy)
    b[10] = _C3[1] * x * y * z
    b[11] = _C3[2] * y * (4.0 * zz - xx - yy)
    b[12] = _C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy)
    b[13] = _C3[4] * x * (4.0 * zz - xx - yy)
    b[14] = _C3[5] * z * (xx - yy)
    b[15] = _C3[6] * x * (xx - 3.0 * yy)


@nb.njit(inline="always")
def _basis_grad(degree, x, y, z, gb, out):
    """out[0:3] = sum_k gb[k] d basis_k / d(x, y, z) (x, y, z treated as independent)."""
    gx = gy = gz = 0.0
    if degree >= 1:
        gy -= SH_C1 * gb[1]
        gz += SH_C1 * gb[2]
        gx -= SH_C1 * gb[3]
    if degree >= 2:
        gx += _C2[0] * y * gb[4]
        gy += _C2[0] * x * gb[4]
        gy += _C2[1] * z * gb[5]
        gz += _C2[1] * y * gb[5]
        gx += _C2[2] * -2.0 * x * gb[6]
        gy += _C2[2] * -2.0 * y * gb[6]
        gz += _C2[2] * 4.0 * z * gb[6]
        gx += _C2[3] * z * gb[7]
        gz += _C2[3] * x * gb[7]
        gx += _C2[4] * 2.0 * x * gb[8]
        gy += _C2[4] * -2.0 * y * gb[8]
    if degree >= 3:
        xx, yy, zz = x * x, y * y, z * z
        gx += _C3[0] * 6.0 * x * y * gb[9]
        gy += _C3[0] * (3.0 * xx - 3.0 * yy) * gb[9]
        gx += _C3[1] * y * z * gb[10]
        gy += _C3[1] * x * z * gb[10]
        gz += _C3[1] * x * y * gb[10]
        gx += _C3[2] * -2.0 * x * y * gb[11]
        gy += _C3[2] * (4.0 * zz - xx - 3.0 * yy) * gb[11]
        gz += _C3[2] * 8.0 * y * z * gb[11]
        gx += _C3[3] * -6.0 * x * z * gb[12]
        gy += _C3[3] * -6.0 * y * z * gb[12]
        gz += _C3[3] * (6.0 * zz - 3.0 * xx - 3.0 * yy) * gb[12]
        gx += _C3[4] * (4.0 * zz - 3.0 * xx - yy) * gb[13]
        gy += _C3[4] * -2.0 * x * y * gb[13]
        gz += _C3[4] * 8.0 * x * z * gb[13]
        gx += _C3[5] * 2.0 * x * z * gb[14]
        gy += _C3[5] * -2.0 * y * z * gb[14]
        gz += _C3[5] * (xx - yy) * gb[14]
        gx += _C3[6] * (3.0 * xx - 3.0 * yy) * gb[15]
        gy += _C3[6] * -6.0 * x * y * gb[15]
    out[0], out[1], out[2] = gx, gy, gz


@nb.njit(inline="always")
def _direction(means, i, center, d):
    """d[0:3] = normalise(means[i] - center); returns 1 / |v| (the norm clamped at 1e-12)."""
    vx = np.float64(means[i, 0]) - center[0]
    vy = np.float64(means[i, 1]) - center[1]
    vz = np.float64(means[i, 2]) - center[2]
    norm = max(np.sqrt(vx * vx + vy * vy + vz * vz), 1e-12)
    inv = 1.0 / norm
    d[0], d[1], d[2] = vx * inv, vy * inv, vz * inv
    return inv


@nb.njit(**_NB)
def sh_fwd(degree, sh0, sh_rest, means, center, colors, passed):
    """colors [N, 3] = max(SH(dir) . coeffs + 0.5, 0); passed [N, 3] = (value >= 0)."""
    n_basis = (degree + 1) * (degree + 1)
    for i in nb.prange(means.shape[0]):
        d = np.empty(3)
        b = np.empty(16)
        _direction(means, i, center, d)
        _basis(degree, d[0], d[1], d[2], b)
        for c in range(3):
            acc = b[0] * np.float64(sh0[i, 0, c])
            for k in range(1, n_basis):
                acc += b[k] * np.float64(sh_rest[i, k - 1, c])
            value = acc + 0.5
            passed[i, c] = value >= 0.0
            colors[i, c] = max(value, 0.0)


@nb.njit(**_NB)
def sh_bwd(degree, sh0, sh_rest, means, center, passed, v_colors, v_sh0, v_rest, v_means):
    """Gradients of `sh_fwd` for upstream v_colors [N, 3] (outputs fully overwritten)."""
    n_basis = (degree + 1) * (degree + 1)
    n_rest = sh_rest.shape[1]
    for i in nb.prange(means.shape[0]):
        d = np.empty(3)
        b = np.empty(16)
        gb = np.zeros(16)
        out = np.empty(3)
        inv = _direction(means, i, center, d)
        _basis(degree, d[0], d[1], d[2], b)
        for c in range(3):
            g = np.float64(v_colors[i, c]) if passed[i, c] else 0.0
            v_sh0[i, 0, c] = b[0] * g
            for k in range(1, n_basis):
                v_rest[i, k - 1, c] = b[k] * g
                gb[k] += g * np.float64(sh_rest[i, k - 1, c])
            for k in range(n_basis, n_rest + 1):
                v_rest[i, k - 1, c] = 0.0
        if degree == 0:
            v_means[i, 0] = v_means[i, 1] = v_means[i, 2] = 0.0
            continue
        _basis_grad(degree, d[0], d[1], d[2], gb, out)
        dot = out[0] * d[0] + out[1] * d[1] + out[2] * d[2]
        for a in range(3):
            v_means[i, a] = (out[a] - dot * d[a]) * inv


class SHColors(torch.autograd.Function):
    """(sh0 [N, 1, 3], sh_rest [N, K, 3], means [N, 3]) -> colours [N, 3] for one camera centre."""

    @staticmethod
    def forward(ctx: Any, sh0: torch.Tensor, sh_rest: torch.Tensor, means: torch.Tensor, degree: int,
                center: np.ndarray):
        dt = np.float64 if torch.float64 in (sh0.dtype, sh_rest.dtype, means.dtype) else np.float32
        a0 = np.ascontiguousarray(sh0.detach().numpy(), dtype=dt)
        ar = np.ascontiguousarray(sh_rest.detach().numpy(), dtype=dt)
        am = np.ascontiguousarray(means.detach().numpy(), dtype=dt)
        colors = np.empty((am.shape[0], 3), dt)
        passed = np.empty((am.shape[0], 3), np.bool_)
        sh_fwd(degree, a0, ar, am, center, colors, passed)
        ctx.saved = (a0, ar, am, center, passed, degree)
        return torch.from_numpy(colors)

    @staticmethod
    def backward(ctx: Any, v_colors: torch.Tensor):
        a0, ar, am, center, passed, degree = ctx.saved
        v0, vr, vm = np.empty_like(a0), np.empty_like(ar), np.empty_like(am)
        sh_bwd(degree, a0, ar, am, center, passed, np.ascontiguousarray(v_colors.numpy(), dtype=a0.dtype),
               v0, vr, vm)
        need = ctx.needs_input_grad
        return (torch.from_numpy(v0) if need[0] else None, torch.from_numpy(vr) if need[1] else None,
                torch.from_numpy(vm) if need[2] else None, None, None)


def sh_colors(degree: int, sh0: torch.Tensor, sh_rest: torch.Tensor, means: torch.Tensor,
              camera_center: torch.Tensor) -> torch.Tensor:
    """View-dependent RGB of every Gaussian (numba; twin: `_sh.eval_sh_colors` on the concatenation).

    Args:
        degree: SH degree 0..3 (sh_rest must hold at least (degree + 1)^2 - 1 bands).
        sh0: [N, 1, 3] DC coefficients. sh_rest: [N, K, 3] higher bands.
        means: [N, 3] world positions. camera_center: [3] world position of the camera.

    Returns:
        [N, 3] colours = max(SH(dir) . coeffs + 0.5, 0), dir = normalise(mean - centre).
    """
    if sh_rest.shape[1] < (degree + 1) ** 2 - 1:
        raise ValueError(f"sh_colors: degree {degree} needs {(degree + 1) ** 2 - 1} higher bands, "
                         f"got {sh_rest.shape[1]}")
    center = camera_center.detach().cpu().numpy().astype(np.float64)
    return SHColors.apply(sh0, sh_rest, means, int(degree), center)
