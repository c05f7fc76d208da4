"""Numba kernels: tile binning with a deterministic depth sort, and per-Gaussian reductions.

Binning (gsplat's rule, in pixel-centre-at-(i + 0.5) coordinates): a Gaussian with
radius r > 0 covers tiles ``floor((m - r) / 16) <= t < ceil((m + r) / 16)`` on each
axis, clamped to the grid. Gaussians are first ordered by (camera z, index) with a
stable sort, then scattered tile by tile in that order (a counting sort), so every
tile's list is sorted by depth with ties broken by index, identically on every run.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from coseg.render._cpu_pixels import TILE

_NB = dict(parallel=True, cache=True, nogil=True)


@nb.njit(**_NB)
def _tile_rects(means2d, radii, tiles_x, tiles_y, rects, counts):
    for i in nb.prange(radii.shape[0]):
        counts[i] = 0
        r = radii[i]
        if r <= 0:
            for k in range(4):
                rects[i, k] = 0
            continue
        x0 = min(max(int(math.floor((means2d[i, 0] - r) / TILE)), 0), tiles_x)
        x1 = min(max(int(math.ceil((means2d[i, 0] + r) / TILE)), 0), tiles_x)
        y0 = min(max(int(math.floor((means2d[i, 1] - r) / TILE)), 0), tiles_y)
        y1 = min(max(int(math.ceil((means2d[i, 1] + r) / TILE)), 0), tiles_y)
        rects[i, 0], rects[i, 1], rects[i, 2], rects[i, 3] = x0, x1, y0, y1
        counts[i] = (x1 - x0) * (y1 - y0)


#: Runs of depth-ordered Gaussians scattered in parallel (a fixed number: the output
#: does not depend on it, and it keeps the per-run tile histograms small).
_SCATTER_RUNS = 16


@nb.njit(**_NB)
def _scatter(order, rects, gauss_offsets, tiles_x, n_tiles, tile_offsets, isect_gauss, gauss_entries):
    """Counting sort of the depth-ordered Gaussians into tiles, in parallel over runs of `order`.

    Run r's entries in tile t go after those of runs < r: per-run tile histograms, a
    (tile, run) prefix sum, then each run writes its own slots, so the result is the
    serial scatter's exactly.
    """
    n_vis = order.shape[0]
    n_runs = max(1, min(_SCATTER_RUNS, n_vis))
    per_run = (n_vis + n_runs - 1) // n_runs
    cursor = np.zeros((n_runs, n_tiles), np.int64)
    # Each Gaussian's rectangle and first entry slot, gathered in depth order once, so the
    # second sweep reads them in sequence.
    ordered = np.empty((n_vis, 5), np.int64)
    for run in nb.prange(n_runs):
        for k in range(run * per_run, min(n_vis, (run + 1) * per_run)):
            g = order[k]
            for q in range(4):
                ordered[k, q] = rects[g, q]
            ordered[k, 4] = gauss_offsets[g]
            for ty in range(ordered[k, 2], ordered[k, 3]):
                for tx in range(ordered[k, 0], ordered[k, 1]):
                    cursor[run, ty * tiles_x + tx] += 1
    pos = 0
    tile_offsets[0] = 0
    for t in range(n_tiles):
        for run in range(n_runs):
            c = cursor[run, t]
            cursor[run, t] = pos
            pos += c
        tile_offsets[t + 1] = pos
    for run in nb.prange(n_runs):
        for k in range(run * per_run, min(n_vis, (run + 1) * per_run)):
            g = order[k]
            j = ordered[k, 4]
            for ty in range(ordered[k, 2], ordered[k, 3]):
                for tx in range(ordered[k, 0], ordered[k, 1]):
                    tile = ty * tiles_x + tx
                    p = cursor[run, tile]
                    cursor[run, tile] = p + 1
                    isect_gauss[p] = g
                    gauss_entries[j] = p
                    j += 1


def depth_order(depths: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """`visible` ([K] int64 indices, ascending) sorted by (depth, index).

    float32 depths: one sort of unique 64-bit keys (order-preserving depth bits, index),
    about 3x faster than a stable argsort and with the same result.
    """
    d = depths[visible]
    if d.dtype != np.float32 or visible.size and visible[-1] >= 2**32:
        return visible[np.argsort(d, kind="stable")]
    bits = (d + np.float32(0.0)).view(np.uint32)  # + 0 turns -0.0 into +0.0, as comparisons see it
    flip = np.where(bits >> np.uint32(31), np.uint32(0xFFFFFFFF), np.uint32(0x80000000))
    keys = ((bits ^ flip).astype(np.uint64) << np.uint64(32)) | visible.astype(np.uint64)
    keys.sort()
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)


def bin_gaussians(means2d: np.ndarray, radii: np.ndarray, depths: np.ndarray,
                  width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bin projected Gaussians into 16x16 tiles, each tile's list sorted by depth.

    Args:
        means2d: [N, 2] float32 pixel coordinates. radii: [N] int32 (0 = culled).
        depths: [N] float32 camera z. width, height: image size.

    Returns:
        tile_offsets [n_tiles + 1] int64 (tile t owns entries tile_offsets[t]:tile_offsets[t+1]),
        isect_gauss [M] int32 (Gaussian of each entry), gauss_offsets [N + 1] int64 and
        gauss_entries [M] int64 (Gaussian g's entries are gauss_entries[gauss_offsets[g]:gauss_offsets[g+1]]).
    """
    n = radii.shape[0]
    tiles_x = (width + TILE - 1) // TILE
    tiles_y = (height + TILE - 1) // TILE
    rects = np.empty((n, 4), np.int64)
    counts = np.empty(n, np.int64)
    _tile_rects(means2d, radii, tiles_x, tiles_y, rects, counts)
    gauss_offsets = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=gauss_offsets[1:])
    m = int(gauss_offsets[-1])
    visible = np.flatnonzero(counts > 0)
    order = depth_order(depths, visible)
    tile_offsets = np.zeros(tiles_x * tiles_y + 1, np.int64)
    isect_gauss = np.empty(m, np.int32)
    gauss_entries = np.empty(m, np.int64)
    _scatter(order, rects, gauss_offsets, tiles_x, tiles_x * tiles_y, tile_offsets, isect_gauss, gauss_entries)
    return tile_offsets, isect_gauss, gauss_offsets, gauss_entries


@nb.njit(**_NB)
def reduce_entries(gauss_offsets, gauss_entries, entry_values, out):
    """out[g] = sum of entry_values over Gaussian g's entries, in a fixed order.

    Args:
        gauss_offsets [N + 1], gauss_entries [M]: from `bin_gaussians`.
        entry_values [M, K]; out [N, K] (overwritten).
    """
    k_dim = entry_values.shape[1]
    for g in nb.prange(out.shape[0]):
        for k in range(k_dim):
            out[g, k] = 0
        for j in range(gauss_offsets[g], gauss_offsets[g + 1]):
            e = gauss_entries[j]
            for k in range(k_dim):
                out[g, k] += entry_values[e, k]
