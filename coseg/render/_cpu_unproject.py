"""Numba kernel: feature unprojection (paper Algorithm 1) in a forward-style blending sweep.

For every pixel p and every Gaussian i blended at p (the 3DGS forward rules), the
kernel adds alpha_i(p) T_i(p) F(p) to the Gaussian's buffer row and 1 to its count.
No per-pixel lists are stored.

Parallelism and determinism: threads split the *channels*, not the tiles. Each
thread sweeps all tiles in order and owns a disjoint block of buffer columns, so
there are no write races and every buffer element is summed in the same order
whatever the number of threads (the transmittance walk is recomputed per block,
which is cheap next to the C-wide accumulation for the feature widths used here).

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

from coseg.render._cpu_raster import ALPHA_MAX, ALPHA_MIN, T_MIN, TILE, entry_rows, row_span, span_gauss

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
def unproject_view(tile_offsets, isect_gauss, means2d, conics, opacities, fmap, width, height,
                   n_blocks, buffer, counts):
    """Add one view's alpha * T * F(p) into buffer [N, C] and its blended-pixel counts into counts [N].

    Args:
        tile_offsets, isect_gauss: from `bin_gaussians`.
        means2d [N, 2], conics [N, 3], opacities [N]: projected Gaussians.
        fmap [h, w, C] float32 feature map of the view. width, height: image size.
        n_blocks: number of channel blocks processed in parallel (results do not depend on it).
        buffer [N, C] float32, counts [N] int64: accumulated in place.
    """
    n_ch = fmap.shape[2]
    tiles_x = (width + TILE - 1) // TILE
    n_tiles = tile_offsets.shape[0] - 1
    per_block = (n_ch + n_blocks - 1) // n_blocks
    for block in nb.prange(n_blocks):
        c0 = min(block * per_block, n_ch)
        c1 = min(c0 + per_block, n_ch)
        feat = np.empty((TILE * TILE, max(c1 - c0, 1)), np.float32)
        trans = np.empty(TILE * TILE)
        done = np.empty(TILE * TILE, np.bool_)
        powers = np.empty(TILE)
        gauss = np.empty(TILE)
        for tile in range(n_tiles):
            start = tile_offsets[tile]
            end = tile_offsets[tile + 1]
            if end == start:
                continue
            x0 = (tile % tiles_x) * TILE
            y0 = (tile // tiles_x) * TILE
            x1 = min(x0 + TILE, width)
            y1 = min(y0 + TILE, height)
            n_pix = (x1 - x0) * (y1 - y0)
            _sample_tile(fmap, x0, x1, y0, y1, width, height, c0, c1, feat)
            trans[:] = 1.0
            done[:] = False
            n_done = 0
            for e in range(start, end):
                if n_done == n_pix:
                    break
                g = isect_gauss[e]
                mx, my = np.float64(means2d[g, 0]), np.float64(means2d[g, 1])
                ca, cb, cc = np.float64(conics[g, 0]), np.float64(conics[g, 1]), np.float64(conics[g, 2])
                op = np.float64(opacities[g])
                py0, py1, r2 = entry_rows(my, ca, cb, cc, op, y0, y1)
                for py in range(py0, py1):
                    dy = my - (py + 0.5)
                    px0, px1 = row_span(mx, dy, ca, cb, cc, r2, x0, x1)
                    span_gauss(mx, dy, ca, cb, cc, px0, px1, powers, gauss)
                    for px in range(px0, px1):
                        k = (py - y0) * TILE + (px - x0)
                        if done[k] or powers[px - px0] > 0.0:
                            continue
                        alpha = min(ALPHA_MAX, op * gauss[px - px0])
                        if alpha < ALPHA_MIN:
                            continue
                        t_next = trans[k] * (1.0 - alpha)
                        if t_next < T_MIN:
                            done[k] = True
                            n_done += 1
                            continue
                        w = np.float32(alpha * trans[k])
                        for c in range(c0, c1):
                            buffer[g, c] += w * feat[k, c - c0]
                        if block == 0:
                            counts[g] += 1
                        trans[k] = t_next
