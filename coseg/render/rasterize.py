"""`rasterization`: the one render entry point (see `docs/rendering.md`)."""

from __future__ import annotations

from typing import Any

import torch

from coseg.render import _validate
from coseg.render._autograd import rasterize_view
from coseg.render._cpu_sh import sh_colors
from coseg.render.backends import Backend, select_backend


def rasterization(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    backgrounds: torch.Tensor | None = None,
    render_depth: bool = False,
    render_dominant: bool = False,
    near_plane: float = 0.2,
    backend: Backend = "auto",
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Render Gaussians from one camera or a batch, differentiably.

    Args:
        means: [N, 3] world positions.
        quats: [N, 4] rotations (w, x, y, z), normalised inside.
        scales: [N, 3] linear standard deviations.
        opacities: [N] in [0, 1].
        colors: [N, C] channels (C = 1..256), or [N, K, 3] SH coefficients (DC first) when
            `sh_degree` is given.
        viewmats: [4, 4] or [B, 4, 4] world-to-camera (OpenCV).
        Ks: [3, 3] or [B, 3, 3] intrinsics in pixels.
        width, height: image size in pixels.
        sh_degree: SH degree 0..3, or None when `colors` are plain channels.
        backgrounds: [C] or [B, C] colour behind the Gaussians (default zeros).
        render_depth: also return meta["depth"] [(B,) H, W, 1], expected camera z.
        render_dominant: also return meta["dominant"] [(B,) H, W] int64, per pixel the index of
            the Gaussian with the largest blending weight alpha * T (the front-most on a tie),
            -1 where nothing is blended. Not differentiable.
        near_plane: Gaussians with camera z <= near_plane are culled.
        backend: "auto" | "cpu" | "gsplat" | "inria".

    Returns:
        images [(B,) H, W, C], alphas [(B,) H, W, 1] and meta with, per camera (leading B
        when batched): radii [N] int32 (0 = culled), visible [N] bool, contrib [N] int32
        (pixels blended), means2d [N, 2] (graph intermediate; ``retain_grad()`` it for the
        densification statistic), depths [N] camera z, conics [N, 3], and "depth" when asked.

    Raises:
        ValueError: bad shapes, NaN/inf, negative scales, zero quaternions, non-positive
            focal lengths or image size; `BackendError` for an unusable backend.
    """
    n = _validate.check_gaussians(means, quats, scales, opacities)
    n_ch = _validate.check_colors(colors, n, sh_degree)
    batch = _validate.check_cameras(viewmats, Ks, width, height)
    _validate.check_backgrounds(backgrounds, batch, n_ch)
    cuda_fn = select_backend(backend, means.device)
    if cuda_fn is not None:
        return cuda_fn(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                       sh_degree=sh_degree, backgrounds=backgrounds, render_depth=render_depth,
                       render_dominant=render_dominant, near_plane=near_plane, backend=backend)
    vms = viewmats.reshape(-1, 4, 4)
    ks = Ks.reshape(-1, 3, 3)
    if backgrounds is None:
        bgs = torch.zeros(vms.shape[0], n_ch, dtype=means.dtype)
    else:
        bgs = backgrounds.reshape(-1, n_ch).expand(vms.shape[0], n_ch)
    results = [_render_one(means, quats, scales, opacities, colors, vms[b], ks[b], int(width), int(height),
                           bgs[b], sh_degree, render_depth, near_plane, render_dominant)
               for b in range(vms.shape[0])]
    if batch == 0:
        return results[0]
    images = torch.stack([r[0] for r in results])
    alphas = torch.stack([r[1] for r in results])
    meta = {key: torch.stack([r[2][key] for r in results]) for key in results[0][2]}
    return images, alphas, meta


def _render_one(means, quats, scales, opacities, colors, viewmat, K, width, height, background,
                sh_degree, render_depth, near_plane, render_dominant):
    """One camera on the CPU backend: SH evaluation, optional depth channel, kernels."""
    if sh_degree is not None:
        rot = viewmat[:3, :3].to(means.dtype)
        center = -rot.T @ viewmat[:3, 3].to(means.dtype)
        colors = sh_colors(sh_degree, colors[:, :1], colors[:, 1:], means, center)
    colors = colors.to(means.dtype)
    background = background.to(means.dtype)
    if render_depth:
        # Depth rides along as one more channel: sum_i w_i z_i, divided by alpha below.
        depths = _depth_column(means, viewmat)
        colors = torch.cat([colors, depths[:, None]], dim=1)
        background = torch.cat([background, background.new_zeros(1)])
    img, alpha, meta = rasterize_view(means, quats, scales, opacities, colors, viewmat, K,
                                      width, height, background, near_plane, render_dominant)
    if render_depth:
        meta["depth"] = img[..., -1:] / alpha.clamp_min(1e-10)
        img = img[..., :-1]
    return img, alpha, meta


def _depth_column(means: torch.Tensor, viewmat: torch.Tensor) -> torch.Tensor:
    """[N] camera z of every Gaussian, differentiable wrt the means."""
    vm = viewmat.to(means.dtype)
    return means @ vm[2, :3] + vm[2, 3]
