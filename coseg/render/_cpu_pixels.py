"""Numba helper shared by the blending kernels: the pixels of a tile an entry can blend into.

The 3DGS rules blend Gaussian g into pixel p only when
``alpha = min(0.99, opacity exp(power)) >= 1/255`` with
``power = -0.5 (a dx^2 + c dy^2) - b dx dy`` (d = mean2d - pixel centre,
(a, b, c) the conic) and ``power <= 0``. `entry_pixels` lists exactly those
pixels of one tile, with their Gaussian value exp(power), so the forward,
backward and unprojection sweeps only do their per-pixel bookkeeping on pixels
that pass the alpha test.

Fast path (well-conditioned conics, the common case): the candidates are the
pixels of the ellipse's bounding box inside the tile (the ellipse
``d^T conic d <= 2 ln(255 opacity)`` holds every pixel that can pass, plus
1e-3 px of slack). The exponent is a quadratic in the pixel coordinates, so
its value moves by a ratio that changes by a constant factor from pixel to
pixel and from row to row: three exp() calls per entry (three more, the
log and the extents once per Gaussian and view in `gaussian_setup`), then two
multiplications per pixel (relative error below 1e-13 over a 16 x 16 tile, far
under the float32 inputs' rounding). For such conics the quadratic form
cannot round below zero, so ``power > 0`` never holds and is not tested.
Otherwise (near-degenerate or indefinite conics, or values that would leave
the float64 range) every candidate pixel gets its own exact exp() and the
``power > 0`` test.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

TILE_SHIFT = 4
TILE = 1 << TILE_SHIFT
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
T_MIN = 1e-4

#: Slack (pixels) added to the analytic extents; far above float64 rounding, far below a pixel.
_SPAN_SLACK = 1e-3
#: det(conic) / (a c) above which the quadratic form is safely positive in float64.
_WELL_CONDITIONED = 1e-6
#: Lowest exponent the recurrences may start from (exp(-600) is still a normal float64).
_LOWEST_POWER = -600.0
#: Columns of `gaussian_setup`'s output.
SETUP = 6


@nb.njit(inline="always")
def _power(dx, dy, ca, cb, cc):
    return -0.5 * (ca * dx * dx + cc * dy * dy) - cb * dx * dy


@nb.njit
def _exact_pixels(mx, my, ca, cb, cc, op, r2, det, x0, x1, y0, y1, pix_k, pix_g):
    """The slow exact path of `entry_pixels`: row spans of the ellipse, exp() per pixel."""
    whole = not (det > 0.0 and ca > 0.0)
    py0, py1 = y0, y1
    if not whole:
        ey = math.sqrt(max(r2 * ca / det, 0.0)) + _SPAN_SLACK
        py0 = max(y0, int(math.ceil(my - ey - 0.5)))
        py1 = min(y1, int(math.floor(my + ey - 0.5)) + 1)
    n = 0
    for py in range(py0, py1):
        dy = my - (py + 0.5)
        px0, px1 = x0, x1
        if not whole:
            disc = cb * cb * dy * dy - ca * (cc * dy * dy - r2)
            if disc < 0.0:
                continue
            root = math.sqrt(disc)
            px0 = max(x0, int(math.ceil(mx - (-cb * dy + root) / ca - _SPAN_SLACK - 0.5)))
            px1 = min(x1, int(math.floor(mx - (-cb * dy - root) / ca + _SPAN_SLACK - 0.5)) + 1)
        for px in range(px0, px1):
            power = _power(mx - (px + 0.5), dy, ca, cb, cc)
            if power > 0.0:
                continue
            value = math.exp(power)
            if op * value >= ALPHA_MIN:
                pix_k[n] = (py - y0) * TILE + (px - x0)
                pix_g[n] = value
                n += 1
    return n


@nb.njit(parallel=True, cache=True, nogil=True)
def gaussian_setup(conics, opacities, radii, setup):
    """Per-Gaussian constants of `entry_pixels`, computed once per view instead of per entry.

    Args:
        conics [N, 3], opacities [N], radii [N] (0 = culled).
        setup: [N, SETUP] float64 output: r2 = 2 ln(255 opacity) (-1: never reaches 1/255),
            the ellipse's half-width and half-height (plus slack; -1: not well-conditioned,
            use the exact path), exp(-a), exp(-b), exp(-c).
    """
    for g in nb.prange(radii.shape[0]):
        ca, cb, cc = np.float64(conics[g, 0]), np.float64(conics[g, 1]), np.float64(conics[g, 2])
        op = np.float64(opacities[g])
        for q in range(SETUP):
            setup[g, q] = -1.0
        if radii[g] <= 0 or not op >= ALPHA_MIN:
            continue
        r2 = 2.0 * math.log(255.0 * op)
        setup[g, 0] = r2
        det = ca * cc - cb * cb
        if det > _WELL_CONDITIONED * ca * cc and ca > 0.0:
            setup[g, 1] = math.sqrt(r2 * cc / det) + _SPAN_SLACK
            setup[g, 2] = math.sqrt(r2 * ca / det) + _SPAN_SLACK
            setup[g, 3] = math.exp(-ca)
            setup[g, 4] = math.exp(-cb)
            setup[g, 5] = math.exp(-cc)


@nb.njit(inline="always")
def entry_pixels(means2d, conics, opacities, setup, g, x0, x1, y0, y1, pix_k, pix_g):
    """List the pixels of tile [x0, x1) x [y0, y1) where Gaussian g passes the alpha test.

    Args:
        means2d [N, 2], conics [N, 3], opacities [N]: projected Gaussians.
        setup: [N, SETUP] from `gaussian_setup`. g: the Gaussian.
        x0, x1, y0, y1: the tile's pixel rectangle.
        pix_k: [TILE * TILE] int output, tile-local pixel index (py - y0) * TILE + (px - x0).
        pix_g: [TILE * TILE] float64 output, exp(power) at that pixel.

    Returns:
        n: the first n slots of pix_k / pix_g are filled (in a fixed order).
    """
    r2 = setup[g, 0]
    if r2 < 0.0:
        return 0
    mx, my = np.float64(means2d[g, 0]), np.float64(means2d[g, 1])
    ca, cb, cc = np.float64(conics[g, 0]), np.float64(conics[g, 1]), np.float64(conics[g, 2])
    op = np.float64(opacities[g])
    ex, ey = setup[g, 1], setup[g, 2]
    if ex < 0.0:
        return _exact_pixels(mx, my, ca, cb, cc, op, r2, ca * cc - cb * cb, x0, x1, y0, y1, pix_k, pix_g)
    py0 = max(y0, int(math.ceil(my - ey - 0.5)))
    py1 = min(y1, int(math.floor(my + ey - 0.5)) + 1)
    qx0 = max(x0, int(math.ceil(mx - ex - 0.5)))
    qx1 = min(x1, int(math.floor(mx + ex - 0.5)) + 1)
    if py1 <= py0 or qx1 <= qx0:
        return 0
    dx0, dy0 = mx - (qx0 + 0.5), my - (py0 + 0.5)
    dx1, dy1 = mx - (qx1 - 0.5), my - (py1 - 0.5)
    # The exponent is concave: its minimum over the box is at a corner.
    lowest = min(min(_power(dx0, dy0, ca, cb, cc), _power(dx1, dy0, ca, cb, cc)),
                 min(_power(dx0, dy1, ca, cb, cc), _power(dx1, dy1, ca, cb, cc)))
    if not lowest > _LOWEST_POWER:
        return _exact_pixels(mx, my, ca, cb, cc, op, r2, ca * cc - cb * cb, x0, x1, y0, y1, pix_k, pix_g)
    row_value = math.exp(_power(dx0, dy0, ca, cb, cc))
    row_step = math.exp(cc * dy0 - 0.5 * cc + cb * dx0)
    row_step_ratio = setup[g, 5]
    col_step = math.exp(ca * dx0 - 0.5 * ca + cb * dy0)
    col_step_ratio = setup[g, 3]
    col_step_row_ratio = setup[g, 4]
    # One flat loop over the box (one hard-to-predict loop exit per entry, not per row).
    cols = qx1 - qx0
    col = 0
    value = row_value
    step = col_step
    k = (py0 - y0) * TILE + (qx0 - x0)
    n = 0
    for _ in range((py1 - py0) * cols):
        pix_k[n] = k
        pix_g[n] = value
        n += op * value >= ALPHA_MIN
        col += 1
        if col == cols:
            col = 0
            row_value *= row_step
            row_step *= row_step_ratio
            col_step *= col_step_row_ratio
            value = row_value
            step = col_step
            k += TILE - cols + 1
        else:
            value *= step
            step *= col_step_ratio
            k += 1
    return n
