"""Splat-level selection, GUI-free: which Gaussians a screen shape, a volume or a filter picks.

A selection is a boolean mask over the Gaussians (`EditorState.selection`).
Screen tools test the projected centres: a rectangle directly, a lasso /
polygon / brush stroke by rasterising the shape into a mask of the viewport
(OpenCV `fillPoly` / thick `polylines`) and looking every centre up in it,
so the cost is one projection of N centres plus one image fill, whatever the
shape's vertex count. Like SuperSplat's default, screen tools select through
the model: every centre inside the shape and in front of the camera counts,
occluded or not (rotate, hide or use a volume to reach only the front).
Volumes test the centres in world space (sphere: centre and radius; box:
centre and half extents, axis-aligned). Filters pick by opacity or by size
(the largest of the three scales). `combine` applies the modifier habit of
SuperSplat and LichtFeld: replace (no modifier), add (Shift), remove (Ctrl).

Grow and shrink move the selection's border by one neighbour radius
(default: twice the median nearest-neighbour spacing): grow adds every
selectable Gaussian within the radius of a selected one, shrink drops every
selected one within the radius of an unselected one.
"""

from __future__ import annotations

from typing import Literal

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
    v = np.asarray(viewmat, np.float32)
    cam = means.astype(np.float32) @ v[:3, :3].T + v[:3, 3]
    z = cam[:, 2]
    fx, fy, cx, cy = (np.float32(f) for f in focal)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(z > NEAR, 1.0 / z, 0.0).astype(np.float32)
    xy = np.stack([fx * cam[:, 0] * inv + cx, fy * cam[:, 1] * inv + cy], 1)
    return xy, z


def in_rect(xy: np.ndarray, z: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """[N] bool: centres inside the pixel rectangle (any corner order)."""
    lo_x, hi_x = sorted((x0, x1))
    lo_y, hi_y = sorted((y0, y1))
    return ((z > NEAR) & (xy[:, 0] >= lo_x) & (xy[:, 0] <= hi_x) & (xy[:, 1] >= lo_y) & (xy[:, 1] <= hi_y))


def _lookup(xy: np.ndarray, z: np.ndarray, mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    ix = np.floor(xy[:, 0]).astype(np.int64)
    iy = np.floor(xy[:, 1]).astype(np.int64)
    inside = (z > NEAR) & (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    out = np.zeros(len(xy), bool)
    out[inside] = mask[iy[inside], ix[inside]] > 0
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
