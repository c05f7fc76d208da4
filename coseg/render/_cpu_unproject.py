"""Numba kernel: feature unprojection (paper Algorithm 1) in a forward-style blending sweep.

For every pixel p and every Gaussian i blended at p (the 3DGS forward rules), the
kernel adds alpha_i(p) T_i(p) F(p) to the Gaussian's buffer row and 1 to its count.
No per-pixel lists are stored.

Parallelism and determinism: tiles are processed in parallel in bands (runs of
consecutive tiles whose intersection entries fit a fixed memory budget); each
entry's sum is accumulated locally and written once to its own row of a
per-band array, then the band's rows are added into the per-Gaussian buffer in
entry order, in parallel over Gaussians. No write races, and every buffer
element is summed in the same order whatever the number of threads. Memory:
the [N, C] buffer plus one band.

Feature maps whose size (h, w) differs from the image are sampled bilinearly at
the pixel centre mapped into the feature grid, the ``align_corners=False``
convention of ``torch.nn.functional.interpolate``: image pixel (i, j) reads the
feature grid at u = (i + 0.5) w / W - 0.5, v = (j + 0.5) h / H - 0.5, clamped to
the grid's edge cells.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from coseg.render._cpu_pixels import ALPHA_MAX, T_MIN, TILE, entry_pixels

_NB = dict(parallel=True, cache=True, nogil=True)


@nb.njit(inline="always")
def _sample_tile(fmap, x0, x1, y0, y1, width, height, c0, c1, feat):
    """feat[k, :c1-c0] = F at the tile's pixels for channels c0:c1 (bilinear if sizes differ)."""
    fh, fw = fmap.shape[0], fmap.shape[1]
    same = fh == height and fw == width
    for py in range(y0, y1):
        v = (py + 0.5) * fh / height - 0.5
        v = min(max(v, 0.0), fh - 1.0)
        r0 = int(math.floor(v))
        r1 = min(r0 + 1, fh - 1)
        fv = v - r0
        for px in range(x0, x1):
            k = (py - y0) * TILE + (px - x0)
            if same:
                for c in range(c0, c1):
                    feat[k, c - c0] = fmap[py, px, c]
                continue
            u = (px + 0.5) * fw / width - 0.5
            u = min(max(u, 0.0), fw - 1.0)
            q0 = int(math.floor(u))
            q1 = min(q0 + 1, fw - 1)
            fu = u - q0
            for c in range(c0, c1):
                top = fmap[r0, q0, c] * (1.0 - fu) + fmap[r0, q1, c] * fu
                bottom = fmap[r1, q0, c] * (1.0 - fu) + fmap[r1, q1, c] * fu
                feat[k, c - c0] = top * (1.0 - fv) + bottom * fv


@nb.njit(**_NB)
def unproject_band(tile_offsets, isect_gauss, projected, fmap, width, height,
                   tile0, tile1, entry_feat, entry_count):
    """Per-entry sums of alpha * T * F(p) and blended-pixel counts for tiles [tile0, tile1).

    Args:
        tile_offsets, isect_gauss: from `_cpu_binning.bin_gaussians`.
        projected: (means2d, conics, opacities, setup) as for `_cpu_raster.raster_fwd`.
        fmap [h, w, C] float32 feature map. width, height: image size.
        entry_feat [>= M_band, C] float32, entry_count [>= M_band] int64: outputs, row
            e - tile_offsets[tile0] for entry e of the band, every row of the band written.
    """
    means2d, conics, opacities, setup = projected
    n_ch = fmap.shape[2]
    tiles_x = (width + TILE - 1) // TILE
    base = tile_offsets[tile0]
    for tile in nb.prange(tile0, tile1):
        start = tile_offsets[tile]
        end = tile_offsets[tile + 1]
        if end == start:
            continue
        x0 = (tile % tiles_x) * TILE
        y0 = (tile // tiles_x) * TILE
        x1 = min(x0 + TILE, width)
        y1 = min(y0 + TILE, height)
        n_pix = (x1 - x0) * (y1 - y0)
        feat = np.empty((TILE * TILE, n_ch), np.float32)
        _sample_tile(fmap, x0, x1, y0, y1, width, height, 0, n_ch, feat)
        trans = np.ones(TILE * TILE)
        done = np.zeros(TILE * TILE, np.bool_)
        pix_k = np.empty(TILE * TILE, np.int64)
        pix_g = np.empty(TILE * TILE)
        gsum = np.empty(n_ch, np.float32)
        n_done = 0
        for e in range(start, end):
            row = e - base
            for c in range(n_ch):
                gsum[c] = 0.0
            count = 0
            if n_done < n_pix:
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
                    w = np.float32(alpha * trans[k])
                    for c in range(n_ch):
                        gsum[c] += w * feat[k, c]
                    count += 1
                    trans[k] = t_next
            for c in range(n_ch):
                entry_feat[row, c] = gsum[c]
            entry_count[row] = count


@nb.njit(**_NB)
def scatter_band(gauss_offsets, gauss_entries, base, n_entries, entry_feat, entry_count, buffer, counts):
    """buffer[g] += rows of Gaussian g's entries in [base, base + n_entries), in entry order.

    Parallel over Gaussians (each owns its buffer row), so there are no write races and
    every buffer element is summed in the same order for any thread count or band size.
    """
    n_ch = buffer.shape[1]
    for g in nb.prange(buffer.shape[0]):
        for j in range(gauss_offsets[g], gauss_offsets[g + 1]):
            r = gauss_entries[j] - base
            if r < 0 or r >= n_entries:
                continue
            for c in range(n_ch):
                buffer[g, c] += entry_feat[r, c]
            counts[g] += entry_count[r]
