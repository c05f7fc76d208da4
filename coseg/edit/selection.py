"""Splat-level selection, GUI-free: which Gaussians a screen shape, a volume or a filter picks.

A selection is a boolean mask over the Gaussians (`EditorState.selection`).
Screen tools test the projected centres: a rectangle directly, a lasso /
polygon / brush stroke by rasterising the shape into a mask of the viewport
(OpenCV `fillPoly` / thick `polylines`) and looking every centre up in it,
so the cost is one projection of N centres plus one image fill, whatever the
shape's vertex count (projection and look-up are one numba pass each). Like
SuperSplat's default, screen tools select through the model: every centre
inside the shape and in front of the camera counts, occluded or not
(rotate, hide or use a volume to reach only the front).
Volumes test the centres in world space (sphere: centre and radius; box:
centre and half extents, axis-aligned). Filters pick by opacity or by size
(the largest of the three scales). `combine` applies the modifier habit of
SuperSplat and LichtFeld: replace (no modifier), add (Shift), remove (Ctrl).

`row_stats` summarises the selected rows of a per-Gaussian array (mean,
min, max: the centre and extent a properties panel shows) in one numba
pass, without gathering the rows first.

Grow and shrink move the selection's border by one neighbour radius
(default: twice the median nearest-neighbour spacing): grow adds every
selectable Gaussian within the radius of a selected one, shrink drops every
selected one within the radius of an unselected one.
"""

from __future__ import annotations

from typing import Literal

import numba
import numpy as np

How = Literal["replace", "add", "remove"]
NEAR = 0.2
"""Centres closer to the camera than this (camera z) are never selected, as they are not drawn."""


def project(means: np.ndarray, viewmat: np.ndarray, focal: tuple[float, float, float, float]):
    """Pixel positions and depths of centres.

    Args:
        means: [N, 3] world centres. viewmat: [4, 4] world-to-camera (OpenCV).
        focal: (fx, fy, cx, cy) in pixels.

    Returns:
        xy [N, 2] float32 pixel coordinates (x right, y down), z [N] float32 camera depth.
    """
    fx, fy, cx, cy = (float(f) for f in focal)
    xy, z = _project(np.ascontiguousarray(means, np.float32), np.asarray(viewmat, np.float64), fx, fy, cx, cy,
                     np.float32(NEAR))
    # numba hands back dtypes numpy does not flag as builtin (a GL binding may misread them); view them plainly.
    return xy.view(np.float32), z.view(np.float32)


@numba.njit(cache=True)
def _project(means, v, fx, fy, cx, cy, near):
    # One pass in float64 (rounded to float32 once): no [N, 3] temporaries for a 200k-splat lasso.
    n = means.shape[0]
    xy = np.empty((n, 2), np.float32)
    z = np.empty(n, np.float32)
    for i in range(n):
        x, y, w = np.float64(means[i, 0]), np.float64(means[i, 1]), np.float64(means[i, 2])
        tx = v[0, 0] * x + v[0, 1] * y + v[0, 2] * w + v[0, 3]
        ty = v[1, 0] * x + v[1, 1] * y + v[1, 2] * w + v[1, 3]
        tz = v[2, 0] * x + v[2, 1] * y + v[2, 2] * w + v[2, 3]
        z[i] = tz
        inv = 1.0 / tz if z[i] > near else 0.0
        xy[i, 0] = fx * tx * inv + cx
        xy[i, 1] = fy * ty * inv + cy
    return xy, z


def in_rect(xy: np.ndarray, z: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """[N] bool: centres inside the pixel rectangle (any corner order)."""
    lo_x, hi_x = sorted((x0, x1))
    lo_y, hi_y = sorted((y0, y1))
    return ((z > NEAR) & (xy[:, 0] >= lo_x) & (xy[:, 0] <= hi_x) & (xy[:, 1] >= lo_y) & (xy[:, 1] <= hi_y))


def _lookup(xy: np.ndarray, z: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[N] bool: centres in front of the camera whose pixel of `mask` ([H, W]) is set."""
    return _lookup_kernel(np.ascontiguousarray(xy, np.float32), np.ascontiguousarray(z, np.float32),
                          np.ascontiguousarray(mask), np.float32(NEAR)).view(np.bool_)


@numba.njit(cache=True)
def _lookup_kernel(xy, z, mask, near):
    h, w = mask.shape
    out = np.zeros(xy.shape[0], np.bool_)
    for i in range(xy.shape[0]):
        if not z[i] > near:  # float32 against float32, as numpy compares `z > NEAR`
            continue
        ix, iy = np.floor(xy[i, 0]), np.floor(xy[i, 1])
        if 0 <= ix < w and 0 <= iy < h:
            out[i] = mask[int(iy), int(ix)] > 0
    return out


def in_polygon(xy: np.ndarray, z: np.ndarray, polygon, size: tuple[int, int]) -> np.ndarray:
    """[N] bool: centres inside a closed polygon (lasso or polygon tool) of a `size` = (W, H) viewport.

    Pixels are filled by OpenCV's even-odd rule at pixel centres; a centre
    is inside when the pixel holding it is filled.
    """
    import cv2

    pts = np.asarray(polygon, np.float64)
    if len(pts) < 3:
        return np.zeros(len(xy), bool)
    w, h = size
    mask = np.zeros((h, w), np.uint8)
    # 4 fractional bits keep sub-pixel vertices (OpenCV's shift argument).
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return _lookup(xy, z, mask)


def in_stroke(xy: np.ndarray, z: np.ndarray, path, radius: float, size: tuple[int, int]) -> np.ndarray:
    """[N] bool: centres within `radius` pixels of a brush path (the stroke's points, in order)."""
    import cv2

    pts = np.asarray(path, np.float64).reshape(-1, 2)
    w, h = size
    mask = np.zeros((h, w), np.uint8)
    if len(pts) == 0:
        return np.zeros(len(xy), bool)
    r = max(1, int(round(radius)))
    ipts = np.round(pts).astype(np.int32)
    for p in ipts:  # a handful of stroke samples, not Gaussians
        cv2.circle(mask, (int(p[0]), int(p[1])), r, 1, thickness=-1)
    if len(ipts) > 1:
        cv2.polylines(mask, [ipts], False, 1, thickness=2 * r)
    return _lookup(xy, z, mask)


def in_sphere(means: np.ndarray, centre, radius: float) -> np.ndarray:
    """[N] bool: centres within `radius` of `centre` [3]."""
    d = means.astype(np.float64) - np.asarray(centre, np.float64)
    return np.einsum("ij,ij->i", d, d) <= float(radius) ** 2


def in_box(means: np.ndarray, centre, half_extents) -> np.ndarray:
    """[N] bool: centres inside the axis-aligned box `centre` +- `half_extents` [3]."""
    d = np.abs(means.astype(np.float64) - np.asarray(centre, np.float64))
    return np.all(d <= np.asarray(half_extents, np.float64), axis=1)


def by_opacity(opacities: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """[N] bool: opacity in [lo, hi]."""
    return (opacities >= lo) & (opacities <= hi)


def by_size(log_scales: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """[N] bool: largest linear scale (world units) in [lo, hi]."""
    size = np.exp(log_scales.max(axis=1).astype(np.float64))
    return (size >= lo) & (size <= hi)


def row_stats(values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, minimum and maximum over some rows of a per-Gaussian array.

    Args:
        values: [N, C] (or [N, ...], flattened per row) floats. rows: [M] row indices, M > 0.

    Returns:
        mean [C] float64 (accumulated in float64), lo [C] and hi [C] float64.
    """
    rows = np.ascontiguousarray(rows, np.int64)
    if not len(rows):
        raise ValueError("row_stats of no rows")
    return _row_stats(np.ascontiguousarray(values).reshape(len(values), -1), rows)


@numba.njit(cache=True)
def _row_stats(values, rows):
    c = values.shape[1]
    total = np.zeros(c)
    lo = np.full(c, np.inf)
    hi = np.full(c, -np.inf)
    for k in range(rows.shape[0]):
        r = rows[k]
        for j in range(c):
            v = np.float64(values[r, j])
            total[j] += v
            lo[j] = min(lo[j], v)
            hi[j] = max(hi[j], v)
    return total / rows.shape[0], lo, hi


def warm_up() -> None:
    """Load (or compile) the numba kernels of the screen tools and `row_stats` (a viewer calls it at start-up)."""
    xy, z = project(np.zeros((1, 3), np.float32), np.eye(4), (1.0, 1.0, 0.0, 0.0))
    in_polygon(xy, z, [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)], (2, 2))
    row_stats(np.zeros((1, 3), np.float32), np.zeros(1, np.int64))


def combine(old: np.ndarray, new: np.ndarray, how: How, selectable: np.ndarray | None = None) -> np.ndarray:
    """The selection after a tool: replace with, add or remove `new` ([N] bool each).

    `selectable` ([N] bool, e.g. not deleted and not hidden) limits what a
    tool can add; removing always works.
    """
    if selectable is not None:
        new = new & selectable
    if how == "add":
        return old | new
    if how == "remove":
        return old & ~new
    if how == "replace":
        return new.copy()
    raise ValueError(f"unknown selection combination {how!r} (replace, add or remove)")


def _near(means: np.ndarray, query: np.ndarray, others: np.ndarray, radius: float) -> np.ndarray:
    """[N] bool: the `query` rows with an `others` row within `radius` (both [N] bool)."""
    from scipy.spatial import cKDTree

    out = np.zeros(len(means), bool)
    if query.any() and others.any():
        dist, _ = cKDTree(means[others]).query(means[query], k=1, distance_upper_bound=radius)
        out[np.flatnonzero(query)[np.isfinite(dist)]] = True
    return out


def grow(means: np.ndarray, selected: np.ndarray, radius: float, selectable: np.ndarray | None = None) -> np.ndarray:
    """The selection plus every selectable centre within `radius` of a selected one."""
    cand = ~selected if selectable is None else (~selected & selectable)
    return selected | _near(means, cand, selected, radius)


def shrink(means: np.ndarray, selected: np.ndarray, radius: float, selectable: np.ndarray | None = None) -> np.ndarray:
    """The selection minus every selected centre within `radius` of an unselected (selectable) one."""
    others = ~selected if selectable is None else (~selected & selectable)
    return selected & ~_near(means, selected, others, radius)
