"""Numba kernel: front-to-back blending of the binned Gaussians (the forward pass).

Blending follows the 3DGS rules per pixel (see `docs/rendering.md`). The loop is
organised entry-major inside a tile: entries are visited front to back and each
one only visits the pixels `_cpu_pixels.entry_pixels` lists for it (those where
its alpha reaches 1/255, with their Gaussian value), so the result is exactly the
per-pixel loop's, for a fraction of the work. Power, alpha and transmittance are
float64; colours accumulate in the colours' dtype.

On request the same sweep records each pixel's dominant Gaussian: the one with
the largest blending weight alpha * T (the first, front to back, on a tie), the
map per-view instance masks are associated through (`coseg.labels`).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from coseg.render._cpu_pixels import ALPHA_MAX, T_MIN, TILE, entry_pixels

_NB = dict(parallel=True, cache=True, nogil=True)


@nb.njit(**_NB)
def raster_fwd(tile_offsets, isect_gauss, projected, colors, background, width, height,
               out_img, out_t, out_last, entry_count, out_dominant):
    """Front-to-back blending of every tile.

    Args:
        tile_offsets, isect_gauss: from `_cpu_binning.bin_gaussians`.
        projected: (means2d [N, 2], conics [N, 3] (a, b, c), opacities [N], setup [N, SETUP] from
            `_cpu_pixels.gaussian_setup`).
        colors [N, C], background [C]: float32 or float64 (colour accumulation in that dtype).
        out_img [H, W, C] of the colours' dtype, out_t [H, W] float64 (final transmittance),
        out_last [H, W] int32 (1 + position in the tile list of the last blended entry, 0 if none),
        entry_count [M] int32 (pixels blended per entry): outputs, fully overwritten.
        out_dominant: [H, W] int32 output, the Gaussian with the largest alpha * T per pixel
            (-1: none blended), or None. numba prunes the ``is None`` branches at compile
            time, so the colour-only specialisation does no dominant bookkeeping at all.
    """
    means2d, conics, opacities, setup = projected
    n_ch = colors.shape[1]
    tiles_x = (width + TILE - 1) // TILE
    n_tiles = tile_offsets.shape[0] - 1
    for tile in nb.prange(n_tiles):
        x0 = (tile % tiles_x) * TILE
        y0 = (tile // tiles_x) * TILE
        x1 = min(x0 + TILE, width)
        y1 = min(y0 + TILE, height)
        n_pix = (x1 - x0) * (y1 - y0)
        trans = np.ones(TILE * TILE)
        last = np.zeros(TILE * TILE, np.int32)
        done = np.zeros(TILE * TILE, np.bool_)
        acc = np.zeros((TILE * TILE, n_ch), colors.dtype)
        pix_k = np.empty(TILE * TILE, np.int64)
        pix_g = np.empty(TILE * TILE)
        n_best = TILE * TILE if out_dominant is not None else 0
        best_w = np.zeros(n_best)
        best_g = np.full(n_best, -1, np.int32)
        n_done = 0
        start = tile_offsets[tile]
        end = tile_offsets[tile + 1]
        for e in range(start, end):
            entry_count[e] = 0
        for e in range(start, end):
            if n_done == n_pix:
                break
            g = isect_gauss[e]
            op = np.float64(opacities[g])
            n = entry_pixels(means2d, conics, opacities, setup, g, x0, x1, y0, y1, pix_k, pix_g)
            count = 0
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
                w = acc.dtype.type(alpha * trans[k])
                if n_ch == 3:
                    acc[k, 0] += w * colors[g, 0]
                    acc[k, 1] += w * colors[g, 1]
                    acc[k, 2] += w * colors[g, 2]
                else:
                    for c in range(n_ch):
                        acc[k, c] += w * colors[g, c]
                if out_dominant is not None:
                    if alpha * trans[k] > best_w[k]:
                        best_w[k] = alpha * trans[k]
                        best_g[k] = g
                trans[k] = t_next
                last[k] = e - start + 1
                count += 1
            entry_count[e] = count
        for py in range(y0, y1):
            for px in range(x0, x1):
                k = (py - y0) * TILE + (px - x0)
                t = trans[k]
                out_t[py, px] = t
                out_last[py, px] = last[k]
                if out_dominant is not None:
                    out_dominant[py, px] = best_g[k]
                for c in range(n_ch):
                    out_img[py, px, c] = acc[k, c] + t * background[c]
