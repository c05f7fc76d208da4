"""The transform gizmo's geometry: handles on screen, hit tests, and what a drag means.

Three modes, each with one handle per world axis (x red, y green, z blue):

- translate: an arrow from the pivot along the axis; dragging moves along
  that axis by the mouse motion projected onto the arrow's screen direction
  (so the grabbed point follows the mouse along the arrow);
- rotate: a ring in the plane perpendicular to the axis; dragging turns
  about the axis by the angle the mouse sweeps around the pivot on screen
  (sign from whether the axis points away from or towards the camera);
- scale: a small square at the end of each axis and one at the pivot, all
  uniform (a Gaussian stays a scaled copy of itself, `coseg.edit.ops.transform`);
  dragging scales by the ratio of the mouse's distances from the pivot.

The handles are `GIZMO_PX` pixels long whatever the zoom: the world length
is that times the pivot's depth over the focal length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.viewport.overlay import Polyline
from coseg.edit.ops import axis_angle_quat

GIZMO_PX = 90.0
HIT_PX = 8.0
AXES = np.eye(3)
AXIS_COLORS = ((0.95, 0.25, 0.25, 1.0), (0.3, 0.9, 0.3, 1.0), (0.3, 0.5, 1.0, 1.0))
ACTIVE_COLOR = (1.0, 0.9, 0.2, 1.0)


@dataclass
class View:
    """What the gizmo needs of the camera: world-to-camera matrix and intrinsics in logical pixels."""

    viewmat: np.ndarray
    focal: tuple[float, float, float, float]

    def project(self, points: np.ndarray) -> np.ndarray:
        """[K, 3] world -> [K, 2] pixels (points behind the camera land far away)."""
        p = np.atleast_2d(points) @ self.viewmat[:3, :3].T + self.viewmat[:3, 3]
        z = np.where(p[:, 2] > 1e-6, p[:, 2], 1e-6)
        fx, fy, cx, cy = self.focal
        return np.stack([fx * p[:, 0] / z + cx, fy * p[:, 1] / z + cy], 1)

    def depth(self, point: np.ndarray) -> float:
        return float(self.viewmat[2, :3] @ point + self.viewmat[2, 3])

    @property
    def forward(self) -> np.ndarray:
        """World direction the camera looks along."""
        return self.viewmat[2, :3]


def world_length(view: View, pivot: np.ndarray) -> float:
    """World length of a `GIZMO_PX` handle at the pivot's depth."""
    return GIZMO_PX * max(view.depth(pivot), 1e-3) / max(view.focal[1], 1e-6)


def handles(mode: str, view: View, pivot: np.ndarray) -> dict[str, np.ndarray]:
    """Handle name -> [K, 2] screen polyline ("x", "y", "z", and "all" for the scale centre)."""
    L = world_length(view, pivot)
    out = {}
    for i, name in enumerate("xyz"):
        if mode == "rotate":
            u, v = AXES[(i + 1) % 3], AXES[(i + 2) % 3]
            t = np.linspace(0, 2 * np.pi, 65)
            ring = pivot + 0.9 * L * (np.cos(t)[:, None] * u + np.sin(t)[:, None] * v)
            out[name] = view.project(ring)
        else:
            out[name] = view.project(np.stack([pivot, pivot + L * AXES[i]]))
    if mode == "scale":
        c = view.project(pivot[None])[0]
        out["all"] = _square(c, 6.0)
    return out


def _square(c: np.ndarray, r: float) -> np.ndarray:
    return np.array([[c[0] - r, c[1] - r], [c[0] + r, c[1] - r], [c[0] + r, c[1] + r],
                     [c[0] - r, c[1] + r], [c[0] - r, c[1] - r]])


def _distance_to_polyline(p: np.ndarray, line: np.ndarray) -> float:
    a, b = line[:-1], line[1:]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-9), 0, 1)
    closest = a + t[:, None] * ab
    return float(np.min(np.linalg.norm(closest - p, axis=1)))


def hit(mode: str, view: View, pivot: np.ndarray, pos) -> str | None:
    """The handle under `pos` (pixels), or None."""
    p = np.asarray(pos, np.float64)
    found = handles(mode, view, pivot)
    if mode == "scale":
        if np.all(np.abs(p - view.project(pivot[None])[0]) <= 8.0):
            return "all"
        for name in "xyz":
            if np.all(np.abs(p - found[name][-1]) <= 8.0):
                return name
        return None
    best, best_d = None, HIT_PX
    for name in "xyz":
        d = _distance_to_polyline(p, found[name])
        if d < best_d:
            best, best_d = name, d
    return best


def overlay(mode: str, view: View, pivot: np.ndarray, active: str | None) -> list[Polyline]:
    """The gizmo as overlay lines, the active (hovered or dragged) handle highlighted."""
    lines = []
    for name, pts in handles(mode, view, pivot).items():
        color = ACTIVE_COLOR if name == active else (AXIS_COLORS["xyz".index(name)] if name in "xyz"
                                                     else (0.9, 0.9, 0.9, 1.0))
        lines.append(Polyline(pts, color))
        if mode == "scale" and name in "xyz":
            lines.append(Polyline(_square(pts[-1], 5.0), color))
        elif mode == "translate" and name in "xyz":
            lines.append(Polyline(_arrow_head(pts[0], pts[-1]), color))
    return lines


def _arrow_head(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = b - a
    n = np.linalg.norm(d)
    if n < 1e-6:
        return np.stack([b, b])
    d = d / n
    side = np.array([-d[1], d[0]])
    return np.stack([b - 10 * d + 5 * side, b, b - 10 * d - 5 * side])


def drag_transform(mode: str, handle: str, view: View, pivot: np.ndarray, start, now):
    """(rotation quaternion, scale, translation) of a drag from `start` to `now` (pixels) on a handle."""
    start, now = np.asarray(start, np.float64), np.asarray(now, np.float64)
    c = view.project(pivot[None])[0]
    ident = np.array([1.0, 0.0, 0.0, 0.0])
    if mode == "translate":
        axis = AXES["xyz".index(handle)]
        L = world_length(view, pivot)
        d = view.project(np.stack([pivot, pivot + L * axis]))
        screen = d[1] - d[0]
        n2 = float(screen @ screen)
        if n2 < 1.0:  # the axis points at the camera: no screen direction to follow
            return ident, 1.0, np.zeros(3)
        return ident, 1.0, axis * L * float((now - start) @ screen) / n2
    if mode == "rotate":
        axis = AXES["xyz".index(handle)]
        a0 = np.arctan2(*(start - c)[::-1])
        a1 = np.arctan2(*(now - c)[::-1])
        angle = np.rad2deg(np.angle(np.exp(1j * (a1 - a0))))
        # Screen angles grow clockwise (y down); a positive turn about an axis that points away
        # from the camera looks clockwise too.
        sign = 1.0 if float(axis @ view.forward) >= 0 else -1.0
        return axis_angle_quat(axis, sign * angle), 1.0, np.zeros(3)
    r0 = max(float(np.linalg.norm(start - c)), 4.0)
    return ident, max(float(np.linalg.norm(now - c)) / r0, 1e-3), np.zeros(3)
