"""Mesh pieces for the demo scene: open3d primitives, rigid placement, items.

World frame of the synthetic scenes: metres, z up, the floor at z = 0. An
`Item` is one object instance (a table, a chair, ...) assembled from
primitive pieces in its own frame: origin at the centre of its footprint on
the ground, front facing +y, back at y = -depth / 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import open3d as o3d


@dataclass(frozen=True)
class Material:
    """A procedural surface texture (evaluated in `coseg.synth.textures`)."""

    pattern: str
    """One of textures.PATTERNS ("plain", "wood", "tiles", ...)."""
    color_a: tuple[float, float, float]
    """Main albedo, linear RGB in [0, 1]."""
    color_b: tuple[float, float, float]
    """Second albedo the pattern blends towards."""
    scale: float
    """Pattern period in metres (tile size, stripe spacing, noise cell)."""
    seed: int
    """Decorrelates the noise of different instances."""


@dataclass
class Piece:
    """A triangle mesh with one material."""

    vertices: np.ndarray
    """[V, 3] float64."""
    triangles: np.ndarray
    """[T, 3] int32."""
    material: Material


@dataclass
class Surface:
    """A horizontal rectangle other items can stand on, in its item's frame."""

    center: tuple[float, float]
    half_size: tuple[float, float]
    z: float


@dataclass
class Item:
    """One object instance assembled in its own frame (see module docstring)."""

    class_name: str
    pieces: list[Piece]
    width: float
    """Footprint along x."""
    depth: float
    """Footprint along y."""
    surfaces: list[Surface] = field(default_factory=list)

    @property
    def height(self) -> float:
        return float(max(p.vertices[:, 2].max() for p in self.pieces))


def _mesh(m: o3d.geometry.TriangleMesh, material: Material, offset) -> Piece:
    v = np.asarray(m.vertices, np.float64) + np.asarray(offset, np.float64)
    return Piece(v, np.asarray(m.triangles, np.int32), material)


def box(center, size, material: Material) -> Piece:
    """An axis-aligned box of `size` (sx, sy, sz) centred at `center`."""
    sx, sy, sz = (float(s) for s in size)
    m = o3d.geometry.TriangleMesh.create_box(sx, sy, sz)
    return _mesh(m, material, np.asarray(center, np.float64) - np.array([sx, sy, sz]) / 2)


def cylinder(base, radius: float, height: float, material: Material, resolution: int = 20) -> Piece:
    """A z-aligned cylinder standing on `base` (x, y, z of the bottom centre)."""
    m = o3d.geometry.TriangleMesh.create_cylinder(float(radius), float(height), resolution, 1)
    return _mesh(m, material, np.asarray(base, np.float64) + [0.0, 0.0, height / 2])


def cone(base, radius: float, height: float, material: Material, resolution: int = 20) -> Piece:
    """A z-aligned cone with its base disc at `base`, tip above it."""
    m = o3d.geometry.TriangleMesh.create_cone(float(radius), float(height), resolution, 1)
    return _mesh(m, material, base)


def sphere(center, radius: float, material: Material, resolution: int = 10) -> Piece:
    """A sphere of `radius` around `center`."""
    m = o3d.geometry.TriangleMesh.create_sphere(float(radius), resolution)
    return _mesh(m, material, center)


def rotation_z(theta: float) -> np.ndarray:
    """[3, 3] rotation by `theta` radians about +z."""
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class Placed:
    """An item placed in the world: rotation about z, then translation."""

    item: Item
    theta: float
    position: np.ndarray
    """[3] world position of the item's origin."""

    def pieces(self) -> list[Piece]:
        """The item's pieces in world coordinates."""
        R = rotation_z(self.theta)
        return [Piece(p.vertices @ R.T + self.position, p.triangles, p.material)
                for p in self.item.pieces]

    def surfaces(self) -> list[tuple[np.ndarray, float, tuple[float, float], float]]:
        """World surfaces as (centre [3], theta, half size, z)."""
        R = rotation_z(self.theta)
        out = []
        for s in self.item.surfaces:
            c = R @ np.array([s.center[0], s.center[1], 0.0]) + self.position
            out.append((c, self.theta, s.half_size, self.position[2] + s.z))
        return out


def footprint(width: float, depth: float, theta: float, center) -> np.ndarray:
    """[4] axis-aligned bounds (xmin, ymin, xmax, ymax) of a rotated rectangle."""
    c, s = abs(np.cos(theta)), abs(np.sin(theta))
    hx = (width * c + depth * s) / 2
    hy = (width * s + depth * c) / 2
    return np.array([center[0] - hx, center[1] - hy, center[0] + hx, center[1] + hy])


def overlaps(a: np.ndarray, b: np.ndarray, margin: float = 0.0) -> bool:
    """Whether two (xmin, ymin, xmax, ymax) rectangles overlap, with a gap of `margin`."""
    return bool(a[0] < b[2] + margin and b[0] < a[2] + margin
                and a[1] < b[3] + margin and b[1] < a[3] + margin)
