"""The `gsplat` CUDA render backend behind `coseg.render.rasterization`.

gsplat's ``rasterization`` takes the same conventions as ours (OpenCV
world-to-camera viewmats, pixel intrinsics, quaternions (w, x, y, z), pixel
centres at i + 0.5, eps2d = 0.3 on the 2D covariance, 16x16 tiles), so the
wrapper only maps arguments and names:

- unpacked mode (``packed=False``) so meta tensors are [B, N, ...];
- ``render_mode="RGB+ED"`` for the expected depth (gsplat divides the blended z
  by alpha itself), the last channel becomes meta["depth"];
- radii: gsplat >= 1.5 returns per-axis radii [B, N, 2]; ours are the max;
- contrib: counted with ``gsplat.rasterize_to_indices_in_range`` over the whole
  depth range from T = 1 (the (Gaussian, pixel) pairs that are blended);
- dominant (``render_dominant``): from the same pairs, their alphas recomputed
  from gsplat's projected means, conics and opacities, by
  `coseg.render._dominant.dominant_from_pairs`.

Differences from the CPU backend that parity tests tolerate: gsplat culls
z < near_plane (ours z <= near_plane) and its radius uses max(0.01, ...) under
the square root instead of 0.1. Images and alphas come back on the inputs'
device; meta["means2d"] stays on the CUDA device. Batched, it is gsplat's own
[B, N, 2] graph node. For one camera gsplat's node is [1, N, 2] and any [N, 2]
view of it would lie downstream of the render, so meta["means2d"] is an [N, 2]
leaf whose ``.grad`` a hook on gsplat's node fills during backward (so
``.backward()`` then ``.grad`` works; ``torch.autograd.grad`` with it as an
input does not).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch


def available() -> bool:
    """True when gsplat is importable and a CUDA device is present."""
    return importlib.util.find_spec("gsplat") is not None and torch.cuda.is_available()


def _blended_pairs(gsplat: Any, meta: dict, n_cams: int, width: int, height: int,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Gaussian ids, pixel ids, camera ids) [M] of every blended pair, over the whole depth range."""
    flatten_ids = meta["flatten_ids"]
    if flatten_ids.numel() == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return empty, empty, empty
    return gsplat.rasterize_to_indices_in_range(
        0, 2**30, torch.ones(n_cams, height, width, device=device),
        meta["means2d"].detach(), meta["conics"].detach(), meta["opacities"].detach(),
        width, height, meta["tile_size"], meta["isect_offsets"], flatten_ids)


def _contributions(pairs, n_cams: int, n: int) -> torch.Tensor:
    """[B, N] int32 number of pixels where each Gaussian is blended."""
    gauss_ids, _, cam_ids = pairs
    flat = cam_ids.long() * n + gauss_ids.long()
    return torch.bincount(flat, minlength=n_cams * n).reshape(n_cams, n).int()


def _dominant(pairs, meta: dict, n_cams: int, width: int, height: int) -> torch.Tensor:
    """[B, H, W] int64 dominant Gaussian per pixel from the blended pairs."""
    from coseg.render._dominant import dominant_from_pairs

    gauss_ids, pixel_ids, cam_ids = (p.long() for p in pairs)
    xy = meta["means2d"].detach()[cam_ids, gauss_ids]
    conic = meta["conics"].detach()[cam_ids, gauss_ids]
    dx = xy[:, 0] - ((pixel_ids % width).to(xy.dtype) + 0.5)
    dy = xy[:, 1] - ((pixel_ids // width).to(xy.dtype) + 0.5)
    sigma = 0.5 * (conic[:, 0] * dx * dx + conic[:, 2] * dy * dy) + conic[:, 1] * dx * dy
    alphas = (meta["opacities"].detach()[cam_ids, gauss_ids] * torch.exp(-sigma)).clamp_max(0.99)
    depths = meta["depths"].detach()[cam_ids, gauss_ids]
    return dominant_from_pairs(gauss_ids, pixel_ids, cam_ids, alphas, depths, n_cams, height, width)


def _single_camera_means2d(batched: torch.Tensor) -> torch.Tensor:
    """[N, 2] leaf mirroring gsplat's [1, N, 2] means2d; its .grad follows the batched node's."""
    leaf = batched[0].detach().requires_grad_(batched.requires_grad)
    if batched.requires_grad:
        def copy_grad(grad: torch.Tensor) -> None:
            leaf.grad = grad[0].clone() if leaf.grad is None else leaf.grad + grad[0]

        batched.register_hook(copy_grad)
    return leaf


def rasterize(means, quats, scales, opacities, colors, viewmats, Ks, width, height, *,
              sh_degree=None, backgrounds=None, render_depth=False, render_dominant=False, near_plane=0.2,
              backend="gsplat"):
    """`coseg.render.rasterization` on gsplat (arguments and returns as documented there)."""
    del backend
    import gsplat

    out_device = means.device
    dev = means.device if means.device.type == "cuda" else torch.device("cuda")
    batched = viewmats.dim() == 3
    vms = viewmats.reshape(-1, 4, 4).to(dev, torch.float32)
    ks = Ks.reshape(-1, 3, 3).to(dev, torch.float32)
    n_cams, n = vms.shape[0], means.shape[0]
    n_ch = 3 if sh_degree is not None else colors.shape[1]
    bgs = None
    if backgrounds is not None:
        bgs = backgrounds.reshape(-1, n_ch).expand(n_cams, n_ch).to(dev, torch.float32)
    images, alphas, gmeta = gsplat.rasterization(
        means.to(dev), quats.to(dev), scales.to(dev), opacities.to(dev), colors.to(dev), vms, ks,
        int(width), int(height), near_plane=near_plane, eps2d=0.3, sh_degree=sh_degree,
        packed=False, tile_size=16, backgrounds=bgs,
        render_mode="RGB+ED" if render_depth else "RGB", rasterize_mode="classic")
    radii = gmeta["radii"]
    if radii.dim() == 3:
        radii = radii.amax(-1)
    radii = radii.int()
    pairs = _blended_pairs(gsplat, gmeta, n_cams, int(width), int(height), dev)
    meta = {
        "radii": radii.to(out_device), "visible": (radii > 0).to(out_device),
        "contrib": _contributions(pairs, n_cams, n).to(out_device),
        "means2d": gmeta["means2d"], "depths": gmeta["depths"].to(out_device),
    }
    if render_dominant:
        meta["dominant"] = _dominant(pairs, gmeta, n_cams, int(width), int(height)).to(out_device)
    if render_depth:
        meta["depth"] = images[..., -1:].to(out_device)
        images = images[..., :-1]
    images, alphas = images.to(out_device), alphas.to(out_device)
    if not batched:
        meta = {k: v[0] for k, v in meta.items()}
        meta["means2d"] = _single_camera_means2d(gmeta["means2d"])
        return images[0], alphas[0], meta
    return images, alphas, meta
