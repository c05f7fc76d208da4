"""Numba kernel: backward pass of the tile blending (hand-written, deterministic).

Every pixel is walked back to front from its last blended entry, recovering
T_j = T_{j+1} / (1 - alpha_j) from the final transmittance stored by the
forward pass (as 3DGS does). Instead of 3DGS's per-channel running colour the
walk keeps one scalar per pixel, the upstream-weighted colour of everything
behind the current entry, which gives the same dL/dalpha:

    dL/dalpha_j = T_j <g, c_j> - (sum_{k>j} w_k <g, c_k> + T_final <g, bg> - T_final dL/dA) / (1 - alpha_j)

with g = dL/dpixel, w_k = alpha_k T_k and A = 1 - T_final the output alpha.

Race freedom: a tile is processed by one thread and every intersection entry
belongs to exactly one tile, so gradients are accumulated per entry
(``entry_geom`` [M, 6], ``entry_color`` [M, C]) without atomics and reduced per
Gaussian afterwards in a fixed order (`_cpu_raster.reduce_entries`). The result
is bitwise identical on every run and for every thread count.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from coseg.render._cpu_raster import ALPHA_MAX, ALPHA_MIN, TILE, entry_rows, row_span, span_gauss

_NB = dict(parallel=True, cache=True, nogil=True)


@nb.njit(inline="always")
def _dot(a, i, b, j, n):
    """sum_c a[i, c] * b[j, c] with eight independent partial sums (a fixed, vectorisable order)."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = a.dtype.type(0.0)
    c = 0
    while c + 8 <= n:
        s0 += a[i, c] * b[j, c]
        s1 += a[i, c + 1] * b[j, c + 1]
        s2 += a[i, c + 2] * b[j, c + 2]
        s3 += a[i, c + 3] * b[j, c + 3]
        s4 += a[i, c + 4] * b[j, c + 4]
        s5 += a[i, c + 5] * b[j, c + 5]
        s6 += a[i, c + 6] * b[j, c + 6]
        s7 += a[i, c + 7] * b[j, c + 7]
        c += 8
    while c < n:
        s0 += a[i, c] * b[j, c]
        c += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@nb.njit(**_NB)
def raster_bwd(tile_offsets, isect_gauss, means2d, conics, opacities, colors, background,
               width, height, out_t, out_last, v_img, v_alpha, need_geom, need_color,
               entry_geom, entry_color):
    """Per-entry gradients of the blending.

    Args:
        tile_offsets, isect_gauss: from `bin_gaussians`.
        means2d, conics, opacities, colors, background: the forward inputs.
        out_t [H, W] float64, out_last [H, W] int32: saved by `raster_fwd`.
        v_img [H, W, C], v_alpha [H, W]: upstream gradients.
        need_geom: compute dL/d(means2d, conics, opacities). need_color: compute dL/dcolors.
        entry_geom [M, 6] (d means2d x, y, d conic a, b, c, d opacity) and
        entry_color [M, C]: outputs, written for every entry when requested.
    """
    n_ch = colors.shape[1]
    tiles_x = (width + TILE - 1) // TILE
    n_tiles = tile_offsets.shape[0] - 1
    for tile in nb.prange(n_tiles):
        x0 = (tile % tiles_x) * TILE
        y0 = (tile // tiles_x) * TILE
        x1 = min(x0 + TILE, width)
        y1 = min(y0 + TILE, height)
        start = tile_offsets[tile]
        end = tile_offsets[tile + 1]
        if end == start:
            continue
        trans = np.ones(TILE * TILE)
        t_final = np.ones(TILE * TILE)
        last = np.zeros(TILE * TILE, np.int64)
        behind = np.zeros(TILE * TILE)
        fixed = np.zeros(TILE * TILE)
        grad = np.zeros((TILE * TILE, n_ch), colors.dtype)
        gcol = np.zeros(n_ch, colors.dtype)
        powers = np.empty(TILE)
        gauss_row = np.empty(TILE)
        max_last = 0
        for py in range(y0, y1):
            for px in range(x0, x1):
                k = (py - y0) * TILE + (px - x0)
                trans[k] = out_t[py, px]
                t_final[k] = out_t[py, px]
                last[k] = out_last[py, px]
                max_last = max(max_last, last[k])
                bg_dot = 0.0
                for c in range(n_ch):
                    grad[k, c] = v_img[py, px, c]
                    bg_dot += np.float64(v_img[py, px, c]) * background[c]
                fixed[k] = t_final[k] * (bg_dot - v_alpha[py, px])
        for e in range(start, end):
            if need_geom:
                for q in range(6):
                    entry_geom[e, q] = 0.0
            if need_color:
                for c in range(n_ch):
                    entry_color[e, c] = 0.0
        for j in range(max_last - 1, -1, -1):
            e = start + j
            g = isect_gauss[e]
            mx, my = np.float64(means2d[g, 0]), np.float64(means2d[g, 1])
            ca, cb, cc = np.float64(conics[g, 0]), np.float64(conics[g, 1]), np.float64(conics[g, 2])
            op = np.float64(opacities[g])
            py0, py1, r2 = entry_rows(my, ca, cb, cc, op, y0, y1)
            g_mx = g_my = g_ca = g_cb = g_cc = g_op = 0.0
            touched = False
            for py in range(py0, py1):
                dy = my - (py + 0.5)
                px0, px1 = row_span(mx, dy, ca, cb, cc, r2, x0, x1)
                span_gauss(mx, dy, ca, cb, cc, px0, px1, powers, gauss_row)
                for px in range(px0, px1):
                    k = (py - y0) * TILE + (px - x0)
                    if j >= last[k] or powers[px - px0] > 0.0:
                        continue
                    dx = mx - (px + 0.5)
                    gauss = gauss_row[px - px0]
                    alpha = min(ALPHA_MAX, op * gauss)
                    if alpha < ALPHA_MIN:
                        continue
                    if not touched and need_color:
                        for c in range(n_ch):
                            gcol[c] = 0.0
                    touched = True
                    inv_one_minus = 1.0 / (1.0 - alpha)
                    trans[k] = trans[k] * inv_one_minus
                    w = alpha * trans[k]
                    if need_color:
                        wt = gcol.dtype.type(w)
                        for c in range(n_ch):
                            gcol[c] += wt * grad[k, c]
                    if need_geom:
                        cdot = _dot(grad, k, colors, g, n_ch)
                        v_a = cdot * trans[k] - (behind[k] + fixed[k]) * inv_one_minus
                        behind[k] += cdot * w
                        if op * gauss <= ALPHA_MAX:
                            g_op += gauss * v_a
                            v_power = op * gauss * v_a
                            g_mx += v_power * (-ca * dx - cb * dy)
                            g_my += v_power * (-cc * dy - cb * dx)
                            g_ca += -0.5 * dx * dx * v_power
                            g_cb += -dx * dy * v_power
                            g_cc += -0.5 * dy * dy * v_power
            if not touched:
                continue
            if need_geom:
                entry_geom[e, 0] = g_mx
                entry_geom[e, 1] = g_my
                entry_geom[e, 2] = g_ca
                entry_geom[e, 3] = g_cb
                entry_geom[e, 4] = g_cc
                entry_geom[e, 5] = g_op
            if need_color:
                for c in range(n_ch):
                    entry_color[e, c] = gcol[c]
