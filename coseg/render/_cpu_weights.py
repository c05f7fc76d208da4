"""Numba kernel: the blending weights alpha * T of every (pixel, Gaussian) pair of one view.

The loop is `_cpu_raster.raster_fwd`'s (entry-major inside a tile, the 3DGS
rules), but instead of accumulating colours it records, per pixel and front
to back, which Gaussians are blended and with what weight. Run twice: once
counting the pairs of every pixel (``fill=False``), then, after a prefix sum
gives each pixel its slice, writing them (``fill=True``); tiles own disjoint
pixels, so both passes are parallel over tiles.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from coseg.render._cpu_pixels import ALPHA_MAX, T_MIN, TILE, entry_pixels


@nb.njit(parallel=True, cache=True, nogil=True)
def blend_pairs(tile_offsets, isect_gauss, projected, width, height, fill, indptr, out_gauss, out_weight):
    """Count (``fill=False``: into ``indptr[1:]``) or write (``fill=True``) the blended pairs.

    Args:
        tile_offsets, isect_gauss: from `_cpu_binning.bin_gaussians`.
        projected: (means2d, conics, opacities, setup) as for `raster_fwd`.
        width, height: image size.
        fill: which pass.
        indptr: [H * W + 1] int64; counting writes pixel p's pair count to indptr[p + 1],
            writing reads each pixel's start from indptr[p].
        out_gauss: [nnz] int32 Gaussian of every pair (written when filling).
        out_weight: [nnz] float32 alpha * T of every pair (written when filling).
    """
    means2d, conics, opacities, setup = projected
    tiles_x = (width + TILE - 1) // TILE
    n_tiles = tile_offsets.shape[0] - 1
    for tile in nb.prange(n_tiles):
        x0 = (tile % tiles_x) * TILE
        y0 = (tile // tiles_x) * TILE
        x1 = min(x0 + TILE, width)
        y1 = min(y0 + TILE, height)
        n_pix = (x1 - x0) * (y1 - y0)
        trans = np.ones(TILE * TILE)
        done = np.zeros(TILE * TILE, np.bool_)
        count = np.zeros(TILE * TILE, np.int64)
        pix_k = np.empty(TILE * TILE, np.int64)
        pix_g = np.empty(TILE * TILE)
        row = np.zeros(TILE * TILE, np.int64)
        if fill:
            for k in range(TILE * TILE):
                py, px = y0 + k // TILE, x0 + k % TILE
                if py < y1 and px < x1:
                    row[k] = indptr[py * width + px]
        n_done = 0
        for e in range(tile_offsets[tile], tile_offsets[tile + 1]):
            if n_done == n_pix:
                break
            g = isect_gauss[e]
            op = np.float64(opacities[g])
            n = entry_pixels(means2d, conics, opacities, setup, g, x0, x1, y0, y1, pix_k, pix_g)
            for i in range(n):
                k = pix_k[i]
                if done[k]:
                    continue
                alpha = min(ALPHA_MAX, op * pix_g[i])
                t_next = trans[k] * (1.0 - alpha)
                if t_next < T_MIN:
                    done[k] = True
                    n_done += 1
                    continue
                if fill:
                    j = row[k] + count[k]
                    out_gauss[j] = g
                    out_weight[j] = alpha * trans[k]
                count[k] += 1
                trans[k] = t_next
        if not fill:
            for py in range(y0, y1):
                for px in range(x0, x1):
                    indptr[py * width + px + 1] = count[(py - y0) * TILE + (px - x0)]
