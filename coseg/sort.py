"""CPU-side support for GPU splatting viewers: depth order, pick candidates, covariances.

A rasteriser on the GPU blends Gaussians back to front, so every time the view
changes enough the viewer needs a new draw order. `depth_order` computes it
with a 16-bit-key counting sort in numba (linear time, parallel histogram and
scatter, stable): view-space depths are quantised into 65536 bins between the
nearest and the farthest Gaussian. Two Gaussians closer in depth than
range / 65536 may come out in either order; for a scene 10 m deep that is
0.15 mm, well below what blending can show.

`pick_candidates` narrows a one-pixel pick down to the Gaussians whose
footprint can reach that pixel, and `pixel_weights` blends just those at that
pixel with the rules of the CPU rasteriser (`coseg.render`: near 0.2, the
1.3 x half-FOV tangent clamp, +0.3 px^2, radius ceil(3 sqrt(lambda_max)),
16 px tile binning, alpha clamp 0.99, skip alpha < 1/255, stop at T < 1e-4),
so a click picks what a full render shows there without rendering an image.

`covariances_upper` gives the 3D covariance R S S^T R^T of every Gaussian as
its 6 upper-triangle entries, computed once per model change and uploaded to
the GPU, where the vertex shader projects it for every frame.

GUI-free: used by the studio's viewport (`app.viewport`) and usable by any
other viewer.
"""

from __future__ import annotations

import numba
import numpy as np

from coseg.gaussians import Gaussians

_ALPHA_REACH = 3.4
_KEY_BITS = 16
_NUM_KEYS = 1 << _KEY_BITS


@numba.njit(parallel=True, cache=True)
def _counting_sort_desc(depth: np.ndarray, n_chunks: int) -> np.ndarray:
    n = depth.shape[0]
    lo = np.inf
    hi = -np.inf
    for i in range(n):
        d = depth[i]
        if d < lo:
            lo = d
        if d > hi:
            hi = d
    span = hi - lo
    scale = (_NUM_KEYS - 1) / span if span > 0 else 0.0
    keys = np.empty(n, np.uint16)
    hist = np.zeros((n_chunks, _NUM_KEYS), np.int64)
    chunk = (n + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            # Farthest first: key 0 is the largest depth.
            k = np.uint16(min(_NUM_KEYS - 1, int((hi - depth[i]) * scale)))
            keys[i] = k
            hist[c, k] += 1
    # Exclusive prefix sum over (key, chunk) so every chunk scatters into its
    # own slots and the sort stays stable and race-free.
    total = 0
    for k in range(_NUM_KEYS):
        for c in range(n_chunks):
            count = hist[c, k]
            hist[c, k] = total
            total += count
    order = np.empty(n, np.uint32)
    for c in numba.prange(n_chunks):
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            k = keys[i]
            order[hist[c, k]] = i
            hist[c, k] += 1
    return order


def view_depths(means: np.ndarray, viewmat: np.ndarray) -> np.ndarray:
    """Camera-space z of every Gaussian centre.

    Args:
        means: [N, 3] float32 world positions.
        viewmat: [4, 4] world-to-camera matrix (OpenCV: the camera looks along +z).

    Returns:
        [N] float32 depths (larger is farther).
    """
    row = np.asarray(viewmat, np.float64)[2]
    return (means @ row[:3].astype(np.float32) + np.float32(row[3])).astype(np.float32)


def depth_order(means: np.ndarray, viewmat: np.ndarray) -> np.ndarray:
    """Back-to-front draw order of Gaussians seen through `viewmat`.

    Args:
        means: [N, 3] float32 world positions.
        viewmat: [4, 4] world-to-camera matrix (OpenCV convention, +z forward).

    Returns:
        [N] uint32 indices into `means`, farthest first (ties within
        depth-range / 65536 keep their index order).
    """
    means = np.ascontiguousarray(means, np.float32)
    if len(means) == 0:
        return np.zeros(0, np.uint32)
    depth = view_depths(means, viewmat)
    n_chunks = max(1, min(numba.get_num_threads(), len(means) // 16384 or 1))
    # numba hands back a dtype numpy does not flag as builtin; view it as the plain one.
    return _counting_sort_desc(depth, n_chunks).view(np.uint32)


def covariances_upper(gaussians: Gaussians) -> np.ndarray:
    """3D covariances Sigma = R S S^T R^T as upper-triangle entries.

    Args:
        gaussians: the model (quats w,x,y,z unnormalised; log scales).

    Returns:
        [N, 6] float32 (xx, xy, xz, yy, yz, zz).
    """
    return covariances_upper_of(gaussians.quats, gaussians.log_scales)


def covariances_upper_of(quats: np.ndarray, log_scales: np.ndarray) -> np.ndarray:
    """`covariances_upper` of [N, 4] quaternions and [N, 3] log-scales (float64 inside, numba-parallel).

    A viewer re-uploading the rows a drag moves calls it on just those rows,
    every frame: the numba kernel is about 50x faster than batched numpy
    3x3 products at 200k rows; `_covariances_upper` is its numpy twin.
    """
    q = np.ascontiguousarray(quats, np.float64)
    ls = np.ascontiguousarray(log_scales, np.float64)
    if len(q) == 0:
        return np.zeros((0, 6), np.float32)
    # numba hands back a dtype numpy does not flag as builtin (vispy then misreads the shape); view it plainly.
    return _covariances_kernel(q, ls).view(np.float32)


@numba.njit(parallel=True, cache=True)
def _covariances_kernel(q: np.ndarray, ls: np.ndarray) -> np.ndarray:
    n = q.shape[0]
    out = np.empty((n, 6), np.float32)
    for i in numba.prange(n):
        norm = max(np.sqrt(q[i, 0] ** 2 + q[i, 1] ** 2 + q[i, 2] ** 2 + q[i, 3] ** 2), 1e-12)
        w, x, y, z = q[i, 0] / norm, q[i, 1] / norm, q[i, 2] / norm, q[i, 3] / norm
        s0, s1, s2 = np.exp(ls[i, 0]), np.exp(ls[i, 1]), np.exp(ls[i, 2])
        # M = R S: columns of R scaled by the axis scales.
        m00, m01, m02 = (1 - 2 * (y * y + z * z)) * s0, 2 * (x * y - w * z) * s1, 2 * (x * z + w * y) * s2
        m10, m11, m12 = 2 * (x * y + w * z) * s0, (1 - 2 * (x * x + z * z)) * s1, 2 * (y * z - w * x) * s2
        m20, m21, m22 = 2 * (x * z - w * y) * s0, 2 * (y * z + w * x) * s1, (1 - 2 * (x * x + y * y)) * s2
        out[i, 0] = m00 * m00 + m01 * m01 + m02 * m02
        out[i, 1] = m00 * m10 + m01 * m11 + m02 * m12
        out[i, 2] = m00 * m20 + m01 * m21 + m02 * m22
        out[i, 3] = m10 * m10 + m11 * m11 + m12 * m12
        out[i, 4] = m10 * m20 + m11 * m21 + m12 * m22
        out[i, 5] = m20 * m20 + m21 * m21 + m22 * m22
    return out


def _covariances_upper(quats: np.ndarray, log_scales: np.ndarray) -> np.ndarray:
    """Plain-numpy twin of `covariances_upper_of` (the tests' reference)."""
    q = quats.astype(np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    w, x, y, z = q.T
    rot = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=1).reshape(-1, 3, 3)
    m = rot * np.exp(log_scales.astype(np.float64))[:, None, :]
    cov = m @ m.transpose(0, 2, 1)
    iu = np.triu_indices(3)
    return cov[:, iu[0], iu[1]].astype(np.float32)


def pick_candidates(means: np.ndarray, max_scales: np.ndarray, viewmat: np.ndarray,
                    focal: tuple[float, float, float, float], x: float, y: float) -> np.ndarray:
    """Gaussians that can cover pixel (x, y): a conservative cone test around its ray.

    A Gaussian's alpha reaches 1/255 only within sqrt(2 ln 255) = 3.33 sigma
    of its centre, so at camera depth z it can cover the pixel only if its
    centre lies within 3.4 * max_scale plus, taken to world units at depth z,
    3.4 * sqrt(0.3) px (the rasteriser's dilation), one pixel and one 16 px
    tile, of the ray through the pixel centre. Centres behind the near plane
    (z <= 0.2) are dropped, as the rasteriser culls them. Gaussians centred
    outside 1.3 x the field of view, whose projection the rasteriser clamps,
    are judged by the same unclamped test.

    Args:
        means: [N, 3] float32 world positions.
        max_scales: [N] float32 largest linear scale of every Gaussian.
        viewmat: [4, 4] world-to-camera (OpenCV).
        focal: (fx, fy, cx, cy) in pixels.
        x, y: a point inside the pixel (column, row).

    Returns:
        [M] int64 indices of the candidates.
    """
    fx, fy, cx, cy = focal
    px = (np.floor(x) + 0.5 - cx) / fx
    py = (np.floor(y) + 0.5 - cy) / fy
    norm = np.sqrt(px * px + py * py + 1.0)
    ray = np.array([px / norm, py / norm, 1.0 / norm])
    per_px = (_ALPHA_REACH * np.sqrt(0.3) + 1.0 + 16.0) / min(fx, fy)
    keep = _cone_test(np.ascontiguousarray(means, np.float32), np.ascontiguousarray(max_scales, np.float32),
                      np.asarray(viewmat, np.float64), ray, per_px)
    return np.flatnonzero(keep)


@numba.njit(cache=True)
def _cone_test(means, max_scales, vm, ray, per_px):
    n = means.shape[0]
    keep = np.zeros(n, np.bool_)
    for i in range(n):
        x, y, z = means[i, 0], means[i, 1], means[i, 2]
        tx = vm[0, 0] * x + vm[0, 1] * y + vm[0, 2] * z + vm[0, 3]
        ty = vm[1, 0] * x + vm[1, 1] * y + vm[1, 2] * z + vm[1, 3]
        tz = vm[2, 0] * x + vm[2, 1] * y + vm[2, 2] * z + vm[2, 3]
        if tz <= 0.2:
            continue
        along = tx * ray[0] + ty * ray[1] + tz * ray[2]
        dist2 = tx * tx + ty * ty + tz * tz - along * along
        reach = _ALPHA_REACH * max_scales[i] + per_px * tz
        keep[i] = dist2 <= reach * reach
    return keep


def pixel_weights(gaussians: Gaussians, viewmat: np.ndarray, focal: tuple[float, float, float, float],
                  size: tuple[int, int], x: float, y: float) -> np.ndarray:
    """Blending weight alpha_i * T_i of every Gaussian at one pixel, as the CPU rasteriser computes it.

    Args:
        gaussians: M Gaussians (typically the `pick_candidates` of the pixel).
        viewmat: [4, 4] world-to-camera (OpenCV).
        focal: (fx, fy, cx, cy) of the full image in pixels.
        size: (width, height) of the full image.
        x, y: a point inside the pixel (column, row).

    Returns:
        [M] float64 weights (0 for Gaussians that do not reach the pixel);
        a render of per-Gaussian channels c gives sum_i weights[i] * c[i] there.
    """
    fx, fy, cx, cy = focal
    w, h = size
    q = gaussians.quats.astype(np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    return _pixel_weights(np.ascontiguousarray(gaussians.means, np.float64), np.ascontiguousarray(q),
                          gaussians.scales.astype(np.float64), gaussians.opacities.astype(np.float64),
                          np.asarray(viewmat, np.float64), float(fx), float(fy), float(cx), float(cy),
                          int(w), int(h), int(np.floor(x)), int(np.floor(y)))


@numba.njit(cache=True)
def _pixel_weights(means, quats, scales, opacities, vm, fx, fy, cx, cy, width, height, px, py):
    n = means.shape[0]
    weights = np.zeros(n, np.float64)
    depth = np.full(n, np.inf)
    alpha = np.zeros(n, np.float64)
    lim_x = 1.3 * 0.5 * width / fx
    lim_y = 1.3 * 0.5 * height / fy
    tile_x, tile_y = px // 16, py // 16
    tiles_x, tiles_y = (width + 15) // 16, (height + 15) // 16
    rot = np.ascontiguousarray(vm[:3, :3])
    shift = vm[:3, 3].copy()
    for i in range(n):
        t = rot @ means[i] + shift
        if not t[2] > 0.2:
            continue
        w_, x_, y_, z_ = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
        r = np.array([[1 - 2 * (y_ * y_ + z_ * z_), 2 * (x_ * y_ - w_ * z_), 2 * (x_ * z_ + w_ * y_)],
                      [2 * (x_ * y_ + w_ * z_), 1 - 2 * (x_ * x_ + z_ * z_), 2 * (y_ * z_ - w_ * x_)],
                      [2 * (x_ * z_ - w_ * y_), 2 * (y_ * z_ + w_ * x_), 1 - 2 * (x_ * x_ + y_ * y_)]])
        m = r * scales[i]
        sigma = m @ m.T
        u = min(max(t[0] / t[2], -lim_x), lim_x) * t[2]
        v = min(max(t[1] / t[2], -lim_y), lim_y) * t[2]
        j = np.array([[fx / t[2], 0.0, -fx * u / (t[2] * t[2])], [0.0, fy / t[2], -fy * v / (t[2] * t[2])]])
        t2 = j @ rot
        cov = t2 @ sigma @ t2.T
        a, b, c = cov[0, 0] + 0.3, cov[0, 1], cov[1, 1] + 0.3
        det = a * c - b * b
        if not det > 0.0:
            continue
        mid = 0.5 * (a + c)
        radius = np.ceil(3.0 * np.sqrt(mid + np.sqrt(max(0.1, mid * mid - det))))
        mx = fx * t[0] / t[2] + cx
        my = fy * t[1] / t[2] + cy
        if mx + radius <= 0.0 or mx - radius >= width or my + radius <= 0.0 or my - radius >= height:
            continue
        x0 = min(max(int(np.floor((mx - radius) / 16)), 0), tiles_x)
        x1 = min(max(int(np.ceil((mx + radius) / 16)), 0), tiles_x)
        y0 = min(max(int(np.floor((my - radius) / 16)), 0), tiles_y)
        y1 = min(max(int(np.ceil((my + radius) / 16)), 0), tiles_y)
        if not (x0 <= tile_x < x1 and y0 <= tile_y < y1):
            continue
        dx = mx - (px + 0.5)
        dy = my - (py + 0.5)
        power = -0.5 * (c * dx * dx + a * dy * dy) / det + b * dx * dy / det
        if power > 0.0:
            continue
        alpha[i] = min(0.99, opacities[i] * np.exp(power))
        depth[i] = t[2]
    trans = 1.0
    for i in np.argsort(depth, kind="mergesort"):
        if depth[i] == np.inf:
            break
        if alpha[i] < 1.0 / 255.0:
            continue
        t_next = trans * (1.0 - alpha[i])
        if t_next < 1e-4:
            break
        weights[i] = alpha[i] * trans
        trans = t_next
    return weights
