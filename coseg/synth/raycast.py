"""CPU ray casting of a layout with open3d's `RaycastingScene`.

One ray per pixel through the pixel centre. Shading is Lambertian and
view-independent: albedo (`coseg.synth.textures`) times ambient light plus a
few point lights with inverse-square-like falloff and hard shadows (shadow
rays; a shadowed light still contributes `SHADOW_FLOOR` of its light so
shadows are soft enough for a photometric reconstruction). Flat triangle
normals (the tessellation of curved primitives shows as facets).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import open3d as o3d

from coseg.synth.cameras import View
from coseg.synth.layout import Layout
from coseg.synth.textures import PATTERNS, albedo, detail_layer

SHADOW_FLOOR = 0.3
_EPS = 1e-3


@dataclass
class Render:
    """The buffers of one view (H, W = the view's size)."""

    rgb: np.ndarray
    """[H, W, 3] uint8."""
    depth: np.ndarray
    """[H, W] float32 metric z-depth, 0 where nothing is hit."""
    classes: np.ndarray
    """[H, W] uint8 semantic class ids (GT)."""
    instances: np.ndarray
    """[H, W] int32 instance ids, -1 where nothing is hit."""
    points: np.ndarray
    """[H, W, 3] float64 world hit points (undefined where nothing is hit)."""


class Renderer:
    """Ray-casts views of one layout.

    Args:
        layout: the scene.
        detail: strength (0-1) of the fine texture detail layer (`textures.detail_layer`).
    """

    def __init__(self, layout: Layout, detail: float = 0.0):
        self.layout = layout
        self.detail = float(detail)
        self.scene = o3d.t.geometry.RaycastingScene()
        ids = [self.scene.add_triangles(p.vertices.astype(np.float32), p.triangles.astype(np.uint32))
               for p in layout.pieces]
        self._piece_of_geometry = np.full(max(ids) + 1, -1, np.int64)
        self._piece_of_geometry[ids] = np.arange(len(ids))
        mats = [p.material for p in layout.pieces]
        self._pattern = np.array([PATTERNS.index(m.pattern) for m in mats], np.int64)
        self._color_a = np.array([m.color_a for m in mats], np.float64)
        self._color_b = np.array([m.color_b for m in mats], np.float64)
        self._scale = np.array([m.scale for m in mats], np.float64)
        self._seed = np.array([m.seed for m in mats], np.int64)
        self._background = layout.background_class if layout.background_class is not None else 0

    def render(self, view: View) -> Render:
        """Ray-cast `view` (pixel centres, z-depth, GT classes and instances)."""
        H, W = view.height, view.width
        # Camera-space z of every direction is 1, so the ray parameter t is the z-depth.
        dirs = _camera_directions(W, H, view.fx, view.fy, view.cx, view.cy) @ view.c2w[:3, :3].T
        origin = np.broadcast_to(view.c2w[:3, 3], dirs.shape)
        rays = np.concatenate([origin, dirs], 1).astype(np.float32)
        hit = self.scene.cast_rays(o3d.core.Tensor(rays))
        t = hit["t_hit"].numpy()
        geom = hit["geometry_ids"].numpy()
        valid = np.isfinite(t) & (geom != self.scene.INVALID_ID)
        piece = np.full(t.shape, -1, np.int64)
        piece[valid] = self._piece_of_geometry[geom[valid]]

        points = origin + t[:, None].astype(np.float64) * dirs
        points[~valid] = 0.0
        normals = hit["primitive_normals"].numpy().astype(np.float64)
        rgb = np.zeros((t.size, 3))
        if self.layout.sky is not None:
            rgb[~valid] = self.layout.sky_color(dirs[~valid])
        if valid.any():
            rgb[valid] = self.shade(points[valid], normals[valid], piece[valid], dirs[valid])
        inst = np.full(t.shape, -1, np.int32)
        inst[valid] = self.layout.piece_instance[piece[valid]]
        classes = np.full(t.shape, self._background, np.uint8)
        classes[valid] = self.layout.instance_class[inst[valid]]
        depth = np.where(valid, t, 0.0).astype(np.float32)
        return Render((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(H, W, 3),
                      depth.reshape(H, W), classes.reshape(H, W), inst.reshape(H, W), points.reshape(H, W, 3))

    def shade(self, points: np.ndarray, normals: np.ndarray, piece: np.ndarray, view_dirs: np.ndarray) -> np.ndarray:
        """Lambertian colour of surface points.

        Args:
            points: [N, 3] world positions on the surfaces.
            normals: [N, 3] unit face normals (flipped to face the viewer).
            piece: [N] piece index of every point.
            view_dirs: [N, 3] directions from the viewer (only their sign against the normal matters).

        Returns:
            [N, 3] float64 linear RGB (not clipped).
        """
        normals = np.where((np.einsum("nk,nk->n", normals, view_dirs) > 0)[:, None], -normals, normals)
        irradiance = np.full(len(points), self.layout.ambient)
        for light in self.layout.lights:
            to_light = light.position - points
            dist = np.linalg.norm(to_light, axis=1)
            cos = np.maximum(np.einsum("nk,nk->n", normals, to_light) / np.maximum(dist, 1e-9), 0.0)
            lit = np.flatnonzero(cos > 0)
            visible = np.ones(len(points))
            if lit.size:
                start = points[lit] + _EPS * normals[lit]
                rays = np.concatenate([start, light.position - start], 1).astype(np.float32)
                blocked = self.scene.test_occlusions(o3d.core.Tensor(rays), tnear=0.0, tfar=1.0).numpy()
                visible[lit[blocked]] = SHADOW_FLOOR
            irradiance += light.power * cos * visible / (1.0 + (dist / light.falloff) ** 2)
        base = albedo(points, self._pattern[piece], self._color_a[piece], self._color_b[piece],
                      self._scale[piece], self._seed[piece])
        if self.detail > 0:
            base = np.clip(base * detail_layer(points, self._seed[piece], self.detail)[:, None], 0.0, 1.0)
        return base * irradiance[:, None]


@functools.lru_cache(maxsize=4)
def _camera_directions(width: int, height: int, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """[H * W, 3] camera-space ray directions through the pixel centres, z = 1 (read-only)."""
    j, i = np.mgrid[0:height, 0:width]
    d = np.stack([(i + 0.5 - cx) / fx, (j + 0.5 - cy) / fy, np.ones((height, width))], -1).reshape(-1, 3)
    d.setflags(write=False)
    return d
