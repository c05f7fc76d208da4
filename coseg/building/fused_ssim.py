"""SSIM with a hand-written forward and backward in numba (in the spirit of `fused-ssim`).

Same definition as the plain-PyTorch twin `coseg.building.losses._ssim` (3DGS's:
11x11 Gaussian window, sigma 1.5, separable, zero padding, C1 = 0.01^2,
C2 = 0.03^2, mean over pixels and channels, optionally over the pixels of a
mask). What autograd does with a dozen full-size temporaries, this does in
two passes per direction:

- forward: one horizontal pass blurs the five maps SSIM needs (x, y, x^2,
  y^2, xy) row by row, one vertical pass finishes the blur and evaluates,
  per pixel, SSIM and its three partial derivatives with respect to the
  blurred maps that depend on x (mu_x, E[x^2], E[xy]);
- backward: the partials times the upstream gradient are blurred with the
  same window (the transpose of a zero-padded convolution with a symmetric
  window is that convolution), then
  dL/dx = B[dS/dmu_x] + 2 x B[dS/dE[x^2]] + y B[dS/dE[xy]].

The kernels work on planar [C, H, W] copies, with the window taps outside
and the image columns inside every loop, so the blur and the per-pixel
formulas vectorise. Arithmetic is in the images' dtype (float32 in training,
as the torch twin's), per-row sums in float64. Rows are processed in
parallel (numba prange); every output element is written by one thread, so
results do not depend on the thread count.
"""

from __future__ import annotations

import functools
from typing import Any

import numba as nb
import numpy as np
import torch

WINDOW = 11
SIGMA = 1.5
C1 = 0.01 ** 2
C2 = 0.03 ** 2

_NB = dict(parallel=True, cache=True, nogil=True, fastmath=False)
_HALF = WINDOW // 2


@functools.lru_cache(maxsize=1)
def window() -> torch.Tensor:
    """[WINDOW] float64 normalised 1-D Gaussian (sigma SIGMA)."""
    x = torch.arange(WINDOW, dtype=torch.float64) - WINDOW // 2
    g = torch.exp(-(x ** 2) / (2.0 * SIGMA ** 2))
    return g / g.sum()


@nb.njit(inline="always")
def _blur_row(src, win, out):
    """out[w] = sum_k win[k] src[w + k] for a zero-padded row src [W + WINDOW - 1] (vectorised over w)."""
    for w in range(out.shape[0]):
        out[w] = 0.0
    for k in range(WINDOW):
        g = win[k]
        for w in range(out.shape[0]):
            out[w] += g * src[w + k]


@nb.njit(**_NB)
def _ssim_fwd(x, y, mask, win, partials, row_sums):
    """SSIM map statistics and the partials the backward needs (planar layout).

    Args:
        x, y: [C, H, W] images. mask: [H, W] pixel weights, or [0, 0] for none.
        win: [WINDOW] normalised 1-D Gaussian, of the images' dtype.
        partials: [3, C, H, W] output: mask * (dS/dmu_x, dS/dE[x^2], dS/dE[xy]).
        row_sums: [C, H] float64 output: sum over the row of mask * S.
    """
    n_ch, h_dim, w_dim = x.shape
    rows = np.empty((5, n_ch, h_dim, w_dim), x.dtype)
    # horizontal pass of the five maps, one image row per iteration
    for task in nb.prange(n_ch * h_dim):
        ch = task // h_dim
        r = task - ch * h_dim
        pad = np.zeros((5, w_dim + WINDOW - 1), x.dtype)
        for w in range(w_dim):
            a = x[ch, r, w]
            b = y[ch, r, w]
            pad[0, w + _HALF] = a
            pad[1, w + _HALF] = b
            pad[2, w + _HALF] = a * a
            pad[3, w + _HALF] = b * b
            pad[4, w + _HALF] = a * b
        for q in range(5):
            _blur_row(pad[q], win, rows[q, ch, r])
    masked = mask.shape[0] > 0
    one = x.dtype.type(1.0)
    two = x.dtype.type(2.0)
    c1 = x.dtype.type(C1)
    c2 = x.dtype.type(C2)
    # vertical pass, then SSIM and its partials per pixel
    for task in nb.prange(n_ch * h_dim):
        ch = task // h_dim
        r = task - ch * h_dim
        acc = np.zeros((5, w_dim), x.dtype)
        for k in range(max(0, _HALF - r), min(WINDOW, h_dim + _HALF - r)):
            g = win[k]
            rr = r + k - _HALF
            for q in range(5):
                for w in range(w_dim):
                    acc[q, w] += g * rows[q, ch, rr, w]
        total = 0.0
        for w in range(w_dim):
            m = mask[r, w] if masked else one
            mu_x, mu_y, e_xx, e_yy, e_xy = acc[0, w], acc[1, w], acc[2, w], acc[3, w], acc[4, w]
            num1 = two * mu_x * mu_y + c1
            num2 = two * (e_xy - mu_x * mu_y) + c2
            den1 = mu_x * mu_x + mu_y * mu_y + c1
            den2 = (e_xx - mu_x * mu_x) + (e_yy - mu_y * mu_y) + c2
            den = den1 * den2
            s = num1 * num2 / den
            total += m * s
            # S = num1 num2 / (den1 den2); d/dmu_x through all four factors
            d_mu = two * mu_y * (num2 - num1) / den - s * (two * mu_x / den1 - two * mu_x / den2)
            partials[0, ch, r, w] = m * d_mu
            partials[1, ch, r, w] = -m * s / den2
            partials[2, ch, r, w] = m * two * num1 / den
        row_sums[ch, r] = total


@nb.njit(**_NB)
def _ssim_bwd(x, y, partials, scale, win, out):
    """out = scale * (B[p0] + 2 x B[p1] + y B[p2]), B the separable blur, p the partials.

    Args:
        x, y: [C, H, W] images. partials: [3, C, H, W] from `_ssim_fwd`.
        scale: the upstream gradient of the mean SSIM divided by its denominator.
        win: [WINDOW] window. out: [C, H, W] output dL/dx.
    """
    n_ch, h_dim, w_dim = x.shape
    rows = np.empty((3, n_ch, h_dim, w_dim), x.dtype)
    for task in nb.prange(n_ch * h_dim):
        ch = task // h_dim
        r = task - ch * h_dim
        pad = np.zeros(w_dim + WINDOW - 1, x.dtype)
        for q in range(3):
            for w in range(w_dim):
                pad[w + _HALF] = partials[q, ch, r, w]
            _blur_row(pad, win, rows[q, ch, r])
    two = x.dtype.type(2.0)
    sc = x.dtype.type(scale)
    for task in nb.prange(n_ch * h_dim):
        ch = task // h_dim
        r = task - ch * h_dim
        acc = np.zeros((3, w_dim), x.dtype)
        for k in range(max(0, _HALF - r), min(WINDOW, h_dim + _HALF - r)):
            g = win[k]
            rr = r + k - _HALF
            for q in range(3):
                for w in range(w_dim):
                    acc[q, w] += g * rows[q, ch, rr, w]
        for w in range(w_dim):
            out[ch, r, w] = sc * (acc[0, w] + two * x[ch, r, w] * acc[1, w] + y[ch, r, w] * acc[2, w])


class FusedSSIM(torch.autograd.Function):
    """(img [H, W, C], ref [H, W, C], mask [H, W] or None) -> [] mean SSIM; gradient for img only."""

    @staticmethod
    def forward(ctx: Any, img: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None):
        dt = np.float64 if img.dtype == torch.float64 else np.float32
        x = np.ascontiguousarray(img.detach().numpy().transpose(2, 0, 1), dtype=dt)
        y = np.ascontiguousarray(ref.detach().numpy().transpose(2, 0, 1), dtype=dt)
        if mask is None:
            m = np.zeros((0, 0), dt)
            denom = float(x.size)
        else:
            m = np.ascontiguousarray(mask.detach().numpy(), dtype=dt)
            denom = float(m.sum()) * x.shape[0]
        win = window().numpy().astype(dt)
        partials = np.empty((3, *x.shape), dt)
        row_sums = np.empty(x.shape[:2], np.float64)
        _ssim_fwd(x, y, m, win, partials, row_sums)
        ctx.saved = (x, y, partials, win, max(denom, 1.0))
        return torch.tensor(row_sums.sum() / max(denom, 1.0), dtype=img.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        if not ctx.needs_input_grad[0]:
            return None, None, None
        x, y, partials, win, denom = ctx.saved
        out = np.empty_like(x)
        _ssim_bwd(x, y, partials, float(grad) / denom, win, out)
        return torch.from_numpy(out).permute(1, 2, 0), None, None


def ssim(img: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean SSIM of two images (numba forward and backward; twin: `losses._ssim`).

    Args:
        img: [H, W, C] rendered image (float32 or float64, CPU); the gradient flows to it.
        ref: [H, W, C] reference image.
        mask: optional [H, W] pixel weights (e.g. 0/1 valid pixels): the mean is taken
            over them (the windows still see every pixel).

    Returns:
        [] scalar SSIM (1 = identical).

    Raises:
        ValueError: `ref` or `mask` requires a gradient (only `img` gets one here).
    """
    if ref.requires_grad or (mask is not None and mask.requires_grad):
        raise ValueError("fused ssim: the reference image and the mask get no gradient; detach them "
                         "(or use losses._ssim)")
    return FusedSSIM.apply(img, ref, mask)
