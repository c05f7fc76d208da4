"""Numba kernel: backward pass of the tile blending (hand-written, deterministic).

Every pixel is walked back to front from its last blended entry, recovering
T_j = T_{j+1} / (1 - alpha_j) from the final transmittance stored by the
forward pass (as 3DGS does). Instead of 3DGS's per-channel running colour the
walk keeps one scalar per pixel, the upstream-weighted colour of everything
behind the current entry, which gives the same dL/dalpha:

    dL/dalpha_j = T_j <g, c_j> - (sum_{k>j} w_k <g, c_k> + T_final <g, bg> - T_final dL/dA) / (1 - alpha_j)

with g = dL/dpixel, w_k = alpha_k T_k and A = 1 - T_final the output alpha.

For RGB each entry is one pass over the pixels it blended into; for wide C
three: the scalar transmittance walk, then the channel work (dL/dcolour = sum_p w_p g_p
and <g_p, c> per pixel) as dense loops over the channels, then the geometry
gradients. Only the channel loops use fast-math (reassociation, so that the
dot products vectorise): their summation order is fixed by the compiled code,
not by the data or the thread count.

Race freedom: a tile is processed by one thread and every intersection entry
belongs to exactly one tile, so gradients are accumulated per entry
(``entry_geom`` [M, 6], ``entry_color`` [M, C]) without atomics and reduced per
Gaussian afterwards in a fixed order (`_cpu_binning.reduce_entries`). The result
is bitwise identical on every run and for every thread count.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from coseg.render._cpu_pixels import ALPHA_MAX, TILE, TILE_SHIFT, entry_pixels

_NB = dict(parallel=True, cache=True, nogil=True)


@nb.njit(fastmath=True, cache=True, nogil=True)
def _channel_pass(grad, sel_k, sel_w, n_sel, colors, g, need_color, need_geom, gcol, cdot):
    """gcol[c] = sum_i w_i grad[k_i, c] and cdot[i] = <grad[k_i], colors[g]> over the n_sel pixels.

    Args:
        grad [TILE * TILE, C]: the tile's upstream gradients. sel_k [>= n_sel] int, sel_w
        [>= n_sel] float64: pixels and blend weights. colors [N, C]; g: the Gaussian.
        gcol [C], cdot [>= n_sel]: outputs (gcol only if need_color, cdot only if need_geom).
    """
    n_ch = colors.shape[1]
    zero = gcol.dtype.type(0.0)
    if need_color:
        for c in range(n_ch):
            gcol[c] = zero
    for i in range(n_sel):
        k = sel_k[i]
        wt = gcol.dtype.type(sel_w[i])
        if need_color:
            for c in range(n_ch):
                gcol[c] += wt * grad[k, c]
        if need_geom:
            s = zero
            for c in range(n_ch):
                s += grad[k, c] * colors[g, c]
            cdot[i] = s


@nb.njit(inline="always")
def _zero_entry(entry_geom, entry_color, e, need_geom, need_color):
    """Zero the gradient rows of an entry that blended nowhere (each row is written once)."""
    if need_geom:
        for q in range(6):
            entry_geom[e, q] = 0.0
    if need_color:
        for c in range(entry_color.shape[1]):
            entry_color[e, c] = 0.0


@nb.njit(inline="always")
def _add_geom(sums, v_a, gauss, op, mx, my, x0, y0, k):
    """sums + pixel k's terms of (dL/dopacity, dL/dpower times 1, dx, dy, dx dx, dx dy, dy dy).

    d = mean2d - pixel centre; no terms where alpha was clamped to ALPHA_MAX (no gradient
    flows through the clamp).
    """
    if op * gauss > ALPHA_MAX:
        return sums
    dx = mx - (x0 + (k & (TILE - 1)) + 0.5)
    dy = my - (y0 + (k >> TILE_SHIFT) + 0.5)
    v_power = op * gauss * v_a
    v_x = v_power * dx
    v_y = v_power * dy
    s_op, s_vx, s_vy, s_vxx, s_vxy, s_vyy = sums
    return s_op + gauss * v_a, s_vx + v_x, s_vy + v_y, s_vxx + v_x * dx, s_vxy + v_x * dy, s_vyy + v_y * dy


@nb.njit(**_NB)
def raster_bwd(tile_offsets, isect_gauss, projected, colors, background, width, height,
               saved, v_img, v_alpha, need_geom, need_color, entry_grads):
    """Per-entry gradients of the blending.

    Args:
        tile_offsets, isect_gauss: from `_cpu_binning.bin_gaussians`.
        projected, colors, background: the forward's inputs (see `raster_fwd`).
        saved: (out_t [H, W] float64, out_last [H, W] int32, entry_count [M] int32) as
            written by `raster_fwd`; entries that blended nowhere are skipped.
        v_img [H, W, C], v_alpha [H, W]: upstream gradients.
        need_geom: compute dL/d(means2d, conics, opacities). need_color: compute dL/dcolors.
        entry_grads: (entry_geom [M, 6] (d means2d x, y, d conic a, b, c, d opacity),
            entry_color [M, C]): outputs, written for every entry when requested.
    """
    means2d, conics, opacities, setup = projected
    out_t, out_last, entry_count = saved
    entry_geom, entry_color = entry_grads
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
        last = np.zeros(TILE * TILE, np.int64)
        behind = np.zeros(TILE * TILE)
        fixed = np.zeros(TILE * TILE)
        grad = np.zeros((TILE * TILE, n_ch), colors.dtype)
        gcol = np.zeros(n_ch, colors.dtype)
        pix_k = np.empty(TILE * TILE, np.int64)
        pix_g = np.empty(TILE * TILE)
        sel_w = np.empty(TILE * TILE)
        sel_inv = np.empty(TILE * TILE)
        cdot = np.empty(TILE * TILE, colors.dtype)
        max_last = 0
        for py in range(y0, y1):
            for px in range(x0, x1):
                k = (py - y0) * TILE + (px - x0)
                trans[k] = out_t[py, px]
                last[k] = out_last[py, px]
                max_last = max(max_last, last[k])
                bg_dot = 0.0
                for c in range(n_ch):
                    grad[k, c] = v_img[py, px, c]
                    bg_dot += np.float64(v_img[py, px, c]) * background[c]
                fixed[k] = trans[k] * (bg_dot - v_alpha[py, px])
        for e in range(start + max_last, end):
            _zero_entry(entry_geom, entry_color, e, need_geom, need_color)
        for j in range(max_last - 1, -1, -1):
            e = start + j
            if entry_count[e] == 0:
                _zero_entry(entry_geom, entry_color, e, need_geom, need_color)
                continue
            g = isect_gauss[e]
            mx, my = np.float64(means2d[g, 0]), np.float64(means2d[g, 1])
            ca, cb, cc = np.float64(conics[g, 0]), np.float64(conics[g, 1]), np.float64(conics[g, 2])
            op = np.float64(opacities[g])
            n = entry_pixels(means2d, conics, opacities, setup, g, x0, x1, y0, y1, pix_k, pix_g)
            sums = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
            n_sel = 0
            if n_ch == 3:
                # RGB: one pass over the pixels this entry was blended into: T_j, the colour
                # sums and the geometry together.
                gc0 = gc1 = gc2 = gcol.dtype.type(0.0)
                for i in range(n):
                    k = pix_k[i]
                    if j >= last[k]:
                        continue
                    n_sel += 1
                    gauss = pix_g[i]
                    alpha = min(ALPHA_MAX, op * gauss)
                    inv_one_minus = 1.0 / (1.0 - alpha)
                    trans[k] = trans[k] * inv_one_minus
                    w = alpha * trans[k]
                    wt = gcol.dtype.type(w)
                    gc0 += wt * grad[k, 0]
                    gc1 += wt * grad[k, 1]
                    gc2 += wt * grad[k, 2]
                    if need_geom:
                        dot = grad[k, 0] * colors[g, 0] + grad[k, 1] * colors[g, 1] + grad[k, 2] * colors[g, 2]
                        v_a = dot * trans[k] - (behind[k] + fixed[k]) * inv_one_minus
                        behind[k] += dot * w
                        sums = _add_geom(sums, v_a, gauss, op, mx, my, x0, y0, k)
                gcol[0], gcol[1], gcol[2] = gc0, gc1, gc2
            else:
                # Wide C, pass 1: the pixels this entry was blended into (in place in pix_k /
                # pix_g) and T_j.
                for i in range(n):
                    k = pix_k[i]
                    if j >= last[k]:
                        continue
                    gauss = pix_g[i]
                    alpha = min(ALPHA_MAX, op * gauss)
                    inv_one_minus = 1.0 / (1.0 - alpha)
                    trans[k] = trans[k] * inv_one_minus
                    pix_k[n_sel] = k
                    pix_g[n_sel] = gauss
                    sel_w[n_sel] = alpha * trans[k]
                    sel_inv[n_sel] = inv_one_minus
                    n_sel += 1
                # Pass 2: the channels as dense loops.
                _channel_pass(grad, pix_k, sel_w, n_sel, colors, g, need_color, need_geom, gcol, cdot)
                # Pass 3: geometry.
                if need_geom:
                    for i in range(n_sel):
                        k = pix_k[i]
                        v_a = cdot[i] * trans[k] - (behind[k] + fixed[k]) * sel_inv[i]
                        behind[k] += cdot[i] * sel_w[i]
                        sums = _add_geom(sums, v_a, pix_g[i], op, mx, my, x0, y0, k)
            if n_sel == 0:
                _zero_entry(entry_geom, entry_color, e, need_geom, need_color)
                continue
            if need_color:
                for c in range(n_ch):
                    entry_color[e, c] = gcol[c]
            if need_geom:
                # dL/dpower's sums and first and second moments in d, combined with the conic.
                s_op, s_vx, s_vy, s_vxx, s_vxy, s_vyy = sums
                entry_geom[e, 0] = -ca * s_vx - cb * s_vy
                entry_geom[e, 1] = -cc * s_vy - cb * s_vx
                entry_geom[e, 2] = -0.5 * s_vxx
                entry_geom[e, 3] = -s_vxy
                entry_geom[e, 4] = -0.5 * s_vyy
                entry_geom[e, 5] = s_op
