"""Dominant-Gaussian maps from lists of blended (Gaussian, pixel) pairs, in plain torch.

The CUDA backends that do not produce the map inside their forward pass
(gsplat exposes the blended pairs through ``rasterize_to_indices_in_range``)
rebuild it here on the device: the pairs are ordered front to back per pixel
(by depth, ties by Gaussian index, the binning order of every backend), the
transmittance before each pair is the exclusive product of (1 - alpha) over
the pixel's earlier pairs, and the pixel's dominant Gaussian is the pair with
the largest weight alpha * T, the front-most on a tie, exactly as the CPU
kernel (`coseg.render._cpu_raster.raster_fwd`) records it.
"""

from __future__ import annotations

import torch


def dominant_from_pairs(gauss_ids: torch.Tensor, pixel_ids: torch.Tensor, image_ids: torch.Tensor,
                        alphas: torch.Tensor, depths: torch.Tensor, n_images: int, height: int,
                        width: int) -> torch.Tensor:
    """Per pixel, the blended Gaussian with the largest alpha * T.

    Args:
        gauss_ids, pixel_ids, image_ids: [M] int, one entry per blended (Gaussian, pixel)
            pair; pixel ids are row-major within the image (y * width + x).
        alphas: [M] the pair's alpha (already clamped to 0.99, all >= 1/255).
        depths: [M] camera z of the pair's Gaussian (front-to-back order).
        n_images, height, width: output size.

    Returns:
        [n_images, height, width] int64 Gaussian index, -1 where no pair exists.
    """
    device = gauss_ids.device
    n_pix = n_images * height * width
    out = torch.full((n_pix,), -1, dtype=torch.int64, device=device)
    if gauss_ids.numel() == 0:
        return out.reshape(n_images, height, width)
    pixel = image_ids.long() * (height * width) + pixel_ids.long()
    # Lexicographic (pixel, depth, Gaussian) order by stable sorts, least significant key first.
    order = torch.argsort(gauss_ids.long(), stable=True)
    order = order[torch.argsort(depths[order], stable=True)]
    order = order[torch.argsort(pixel[order], stable=True)]
    pixel, gauss = pixel[order], gauss_ids.long()[order]
    alpha = alphas[order].double()
    log_keep = torch.log1p(-alpha)
    before = torch.cumsum(log_keep, 0) - log_keep
    starts = torch.ones_like(pixel, dtype=torch.bool)
    starts[1:] = pixel[1:] != pixel[:-1]
    first = torch.cummax(torch.where(starts, torch.arange(len(pixel), device=device), 0), 0).values
    weights = alpha * torch.exp(before - before[first])
    best = torch.full((n_pix,), -1.0, dtype=torch.float64, device=device)
    best = best.scatter_reduce(0, pixel, weights, reduce="amax")
    position = torch.arange(len(pixel), device=device)
    candidate = torch.where(weights == best[pixel], position, len(pixel))
    front = torch.full((n_pix,), len(pixel), dtype=torch.int64, device=device)
    front = front.scatter_reduce(0, pixel, candidate, reduce="amin")
    hit = front < len(pixel)
    out[hit] = gauss[front[hit]]
    return out.reshape(n_images, height, width)
