"""torch.autograd.Function wrappers around the numba kernels (the CPU backend).

Structured like gsplat: `ProjectGaussians` maps (means, quats, scales) to
(means2d, conics, depths) and `RasterizeGaussians` blends (means2d, conics,
colours, opacities, background) into an image, so ``means2d`` is an
intermediate node of the graph whose ``.grad`` densification can read.

Tensors are converted once per call to contiguous float32 numpy arrays
(float64 inputs stay float64, which the gradient-check tests use). Backward
work is skipped for inputs that do not need a gradient: with geometry frozen
only the colour gradient is computed.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import torch

from coseg.render._cpu_binning import bin_gaussians, reduce_entries
from coseg.render._cpu_pixels import SETUP, gaussian_setup
from coseg.render._cpu_project import project_bwd, project_fwd
from coseg.render._cpu_raster import raster_fwd
from coseg.render._cpu_raster_bwd import raster_bwd


def as_numpy(x: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """Detached contiguous numpy view/copy of a CPU tensor in `dtype`."""
    return np.ascontiguousarray(x.detach().cpu().numpy(), dtype=dtype)


def work_dtype(*tensors: torch.Tensor) -> np.dtype:
    """float64 when any input is float64, else float32."""
    return np.dtype(np.float64) if any(t.dtype == torch.float64 for t in tensors) else np.dtype(np.float32)


class ProjectGaussians(torch.autograd.Function):
    """(means [N,3], quats [N,4], scales [N,3]) -> (means2d [N,2], conics [N,3], depths [N], radii [N])."""

    @staticmethod
    def forward(ctx: Any, means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor,
                viewmat: np.ndarray, intr: np.ndarray, width: int, height: int, near: float):
        dt = work_dtype(means, quats, scales)
        m, q, s = as_numpy(means, dt), as_numpy(quats, dt), as_numpy(scales, dt)
        n = m.shape[0]
        means2d, conics, depths = np.empty((n, 2), dt), np.empty((n, 3), dt), np.empty(n, dt)
        radii = np.empty(n, np.int32)
        project_fwd(m, q, s, viewmat, intr, width, height, near, means2d, conics, depths, radii)
        ctx.arrays = (m, q, s, viewmat, intr, radii)
        ctx.size = (width, height)
        radii_t = torch.from_numpy(radii)
        ctx.mark_non_differentiable(radii_t)
        return torch.from_numpy(means2d), torch.from_numpy(conics), torch.from_numpy(depths), radii_t

    @staticmethod
    def backward(ctx: Any, v_means2d, v_conics, v_depths, _v_radii):
        if not any(ctx.needs_input_grad[:3]):
            return (None,) * 8
        m, q, s, viewmat, intr, radii = ctx.arrays
        dt = m.dtype
        v_means, v_quats, v_scales = np.empty_like(m), np.empty_like(q), np.empty_like(s)
        project_bwd(m, q, s, viewmat, intr, ctx.size[0], ctx.size[1], radii,
                    as_numpy(v_means2d, dt), as_numpy(v_conics, dt), as_numpy(v_depths, dt),
                    v_means, v_quats, v_scales)
        grads = [torch.from_numpy(v) if need else None
                 for v, need in zip((v_means, v_quats, v_scales), ctx.needs_input_grad[:3])]
        return (*grads, None, None, None, None, None)


class RasterizeGaussians(torch.autograd.Function):
    """Blend projected Gaussians: returns (image [H,W,C], alpha [H,W,1], contrib [N] int32,
    dominant [H,W] int64 (-1 = none; [0, 0] unless `want_dominant`))."""

    @staticmethod
    def forward(ctx: Any, means2d: torch.Tensor, conics: torch.Tensor, colors: torch.Tensor,
                opacities: torch.Tensor, background: torch.Tensor, radii: torch.Tensor,
                depths: torch.Tensor, width: int, height: int, want_dominant: bool = False):
        dt = work_dtype(means2d, conics, colors, opacities)
        xy, con, col = as_numpy(means2d, dt), as_numpy(conics, dt), as_numpy(colors, dt)
        op, bg = as_numpy(opacities, dt), as_numpy(background, dt)
        n, n_ch = col.shape
        binning = bin_gaussians(xy, radii.numpy(), as_numpy(depths, dt), width, height)
        projected = (xy, con, op, np.empty((n, SETUP)))
        gaussian_setup(con, op, radii.numpy(), projected[3])
        tile_offsets, isect_gauss, gauss_offsets, gauss_entries = binning
        img = np.empty((height, width, n_ch), dt)
        out_t = np.empty((height, width), np.float64)
        out_last = np.empty((height, width), np.int32)
        entry_count = np.empty(isect_gauss.shape[0], np.int32)
        dominant = np.empty((height, width), np.int32) if want_dominant else None
        with numba.parallel_chunksize(1):
            raster_fwd(tile_offsets, isect_gauss, projected, col, bg, width, height,
                       img, out_t, out_last, entry_count, dominant)
        contrib = np.empty((n, 1), np.int32)
        reduce_entries(gauss_offsets, gauss_entries, entry_count[:, None], contrib)
        ctx.arrays = (projected, col, bg, binning, (out_t, out_last, entry_count))
        ctx.size = (width, height)
        alpha = torch.from_numpy((1.0 - out_t).astype(dt)[..., None])
        contrib_t = torch.from_numpy(contrib[:, 0])
        dominant_t = torch.from_numpy(dominant.astype(np.int64) if want_dominant else np.zeros((0, 0), np.int64))
        ctx.mark_non_differentiable(contrib_t, dominant_t)
        return torch.from_numpy(img), alpha, contrib_t, dominant_t

    @staticmethod
    def backward(ctx: Any, v_img, v_alpha, _v_contrib, _v_dominant):
        projected, col, bg, binning, saved = ctx.arrays
        out_t = saved[0]
        xy = projected[0]
        tile_offsets, isect_gauss, gauss_offsets, gauss_entries = binning
        need = ctx.needs_input_grad
        need_geom = need[0] or need[1] or need[3]
        need_color = need[2]
        dt = xy.dtype
        n, n_ch = col.shape
        m = isect_gauss.shape[0]
        g_img = as_numpy(v_img, dt)
        g_alpha = as_numpy(v_alpha[..., 0], dt)
        entry_geom = np.empty((m, 6) if need_geom else (0, 6), np.float64)
        entry_color = np.empty((m, n_ch) if need_color else (0, n_ch), dt)
        if need_geom or need_color:
            with numba.parallel_chunksize(1):
                raster_bwd(tile_offsets, isect_gauss, projected, col, bg, ctx.size[0], ctx.size[1],
                           saved, g_img, g_alpha, need_geom, need_color, (entry_geom, entry_color))
        v_xy = v_con = v_col = v_op = v_bg = None
        if need_geom:
            geom = np.empty((n, 6), np.float64)
            reduce_entries(gauss_offsets, gauss_entries, entry_geom, geom)
            geom = torch.from_numpy(geom.astype(dt))
            v_xy, v_con, v_op = geom[:, 0:2], geom[:, 2:5], geom[:, 5]
        if need_color:
            v_col = np.empty((n, n_ch), dt)
            reduce_entries(gauss_offsets, gauss_entries, entry_color, v_col)
            v_col = torch.from_numpy(v_col)
        if need[4]:
            v_bg = (torch.from_numpy(out_t.astype(dt))[..., None] * v_img).sum((0, 1))
        return v_xy, v_con, v_col, v_op, v_bg, None, None, None, None, None


def rasterize_view(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor,
                   opacities: torch.Tensor, colors: torch.Tensor, viewmat: torch.Tensor,
                   K: torch.Tensor, width: int, height: int, background: torch.Tensor,
                   near_plane: float, render_dominant: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Render one camera with the CPU kernels (inputs already validated).

    Args:
        means [N, 3], quats [N, 4], scales [N, 3], opacities [N], colors [N, C] (already
        evaluated from SH when needed), viewmat [4, 4], K [3, 3], background [C].
        render_dominant: also return meta["dominant"].

    Returns:
        image [H, W, C], alpha [H, W, 1], meta with radii, visible, contrib, means2d, depths
        (and dominant [H, W] int64 when asked).
    """
    vm = viewmat.detach().cpu().numpy().astype(np.float64)
    k = K.detach().cpu().numpy().astype(np.float64)
    intr = np.array([k[0, 0], k[1, 1], k[0, 2], k[1, 2]], np.float64)
    means2d, conics, depths, radii = ProjectGaussians.apply(
        means, quats, scales, vm, intr, width, height, near_plane)
    img, alpha, contrib, dominant = RasterizeGaussians.apply(
        means2d, conics, colors, opacities, background, radii, depths, width, height, render_dominant)
    meta = {"radii": radii, "visible": radii > 0, "contrib": contrib, "means2d": means2d,
            "depths": depths, "conics": conics}
    if render_dominant:
        meta["dominant"] = dominant
    return img, alpha, meta
