"""Far-field Gaussians: a sphere of large Gaussians far outside the scene, for open backgrounds.

Sky, a distant backdrop or anything beyond the reconstructed points has no
initial points (SfM and depth maps give none there), so the densification
has to grow Gaussians into it from the scene's edge. Those land at the wrong
depth: they cover the sky in the training views they were fitted to and
leave holes (the background colour) in novel views. A layer of Gaussians on
a sphere of radius ``far_field_radius`` x extent around the cameras starts
the background where it belongs, at a depth at which parallax between the
views is negligible, so every view sees the same sky.

Placement: a Fibonacci sphere around the mean camera centre with as many
directions as give neighbours ``far_field_spacing`` pixels apart in the
training images (4 pi / (spacing / focal length)^2 directions, at most
`MAX_DIRECTIONS`); the points inside at least one training frustum are kept.
Scale: the spacing of the sphere points (so neighbours overlap into a
continuous layer). Colour: the mean of the training pixels each point
projects to (a first guess; training refines it). Opacity: the initial
opacity of the other Gaussians.

Indoors the sphere lies behind the walls. The densification strategy removes
far-field Gaussians that no training pixel blended for longer than one pass
over the training views (see `coseg.building.strategy`), so closed scenes end
with none of them; the size-based pruning rules exempt them (they are large
by design).
"""

from __future__ import annotations

import logging

import numpy as np

from coseg.building.init import in_frustum
from coseg.gaussians import Gaussians
from coseg.scene import Camera

log = logging.getLogger(__name__)

MAX_DIRECTIONS = 200_000
"""Most directions on the sphere (a 12-pixel spacing reaches it near 1,500-pixel focal lengths)."""


def fibonacci_sphere(n: int) -> np.ndarray:
    """[n, 3] unit vectors spread evenly over the sphere (golden-angle spiral)."""
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    r = np.sqrt(np.maximum(1.0 - z * z, 0.0))
    phi = np.pi * (3.0 - np.sqrt(5.0)) * k
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def far_field_directions(cams: list[Camera], spacing_px: float) -> int:
    """Directions on the whole sphere for neighbours `spacing_px` pixels apart (0: none)."""
    if spacing_px <= 0:
        return 0
    focal = float(np.mean([0.5 * (c.fx + c.fy) for c in cams]))
    return int(min(MAX_DIRECTIONS, 4.0 * np.pi / (spacing_px / focal) ** 2))


def far_field_gaussians(cams: list[Camera], images: list[np.ndarray], extent: float, spacing_px: float,
                        radius_factor: float, opacity: float, sh_degree: int,
                        valid: list[np.ndarray | None] | None = None) -> Gaussians | None:
    """Gaussians on the far-field sphere that a training camera sees (None: none asked or seen).

    Args:
        cams: training cameras. images: their [H, W, 3] float images (the colour samples).
        extent: scene extent; the sphere radius is radius_factor x extent.
        spacing_px: spacing of neighbours in the images (sets the number of directions).
        opacity: initial opacity. sh_degree: SH degree of the returned model.
        valid: per image, [H, W] bool pixels that see the photo (None: all): only those are
            colour samples (undistortion borders are not the sky).
    """
    n_points = far_field_directions(cams, spacing_px)
    if n_points <= 0:
        return None
    centre = np.mean([c.center for c in cams], axis=0)
    radius = radius_factor * extent
    xyz = centre + radius * fibonacci_sphere(n_points)
    colour_sum = np.zeros((n_points, 3))
    seen = np.zeros(n_points)
    for i, (cam, image) in enumerate(zip(cams, images)):
        inside = np.flatnonzero(in_frustum(xyz, cam))
        if inside.size == 0:
            continue
        t = xyz[inside] @ cam.world_to_camera[:3, :3].T + cam.world_to_camera[:3, 3]
        u = np.clip((cam.fx * t[:, 0] / t[:, 2] + cam.cx).astype(np.int64), 0, cam.width - 1)
        v = np.clip((cam.fy * t[:, 1] / t[:, 2] + cam.cy).astype(np.int64), 0, cam.height - 1)
        mask = None if valid is None else valid[i]
        if mask is not None:
            ok = mask[v, u]
            inside, u, v = inside[ok], u[ok], v[ok]
        colour_sum[inside] += image[v, u]
        seen[inside] += 1
    keep = seen > 0
    if not keep.any():
        return None
    spacing = radius * np.sqrt(4.0 * np.pi / n_points)
    rgb = colour_sum[keep] / seen[keep, None]
    g = Gaussians.from_points(xyz[keep].astype(np.float32), np.clip(rgb, 0, 1).astype(np.float32),
                              scale=np.full(int(keep.sum()), spacing, np.float32), opacity=opacity,
                              sh_degree=sh_degree)
    log.info("far field: %d Gaussians on a sphere of radius %.1f (%.0f x extent), scale %.2f",
             len(g), radius, radius_factor, spacing)
    return g
