"""The viewport camera: orbit / pan / zoom and fly, in the project's convention.

The state is a target point, a distance and a camera-to-world rotation whose
columns are the camera's right, down and forward axes (OpenCV, as in
`coseg.scene`). The camera sits at ``target - distance * forward``. Orbiting
turns around the target about the world up axis and the camera's right axis;
flying moves target and camera together and turns about the camera position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from coseg.scene import Camera


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """[3, 3] rotation by `angle` radians about a unit `axis` (Rodrigues)."""
    axis = axis / max(np.linalg.norm(axis), 1e-12)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def look_rotation(forward: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Camera-to-world rotation [3, 3] looking along `forward` with `up` on screen up."""
    f = forward / np.linalg.norm(forward)
    right = np.cross(f, up)
    if np.linalg.norm(right) < 1e-6:
        right = np.cross(f, np.array([1.0, 0.0, 0.0]) if abs(f[0]) < 0.9 else np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(f, right)
    return np.stack([right, down, f], axis=1)


@dataclass
class ViewCamera:
    """Interactive camera state (see module docstring)."""

    target: np.ndarray = field(default_factory=lambda: np.zeros(3))
    distance: float = 3.0
    rotation: np.ndarray = field(default_factory=lambda: look_rotation(np.array([0.0, 1.0, -0.4]),
                                                                        np.array([0.0, 0.0, 1.0])))
    up: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))
    fov_y: float = math.radians(50.0)
    intrinsics: tuple[int, int, float, float, float, float] | None = None
    """(W, H, fx, fy, cx, cy) of a snapped training camera, used at exactly that size."""

    # ------------------------------------------------------------ matrices
    @property
    def forward(self) -> np.ndarray:
        return self.rotation[:, 2]

    @property
    def position(self) -> np.ndarray:
        return self.target - self.distance * self.forward

    def viewmat(self) -> np.ndarray:
        """[4, 4] float64 world-to-camera matrix."""
        m = np.eye(4)
        m[:3, :3] = self.rotation.T
        m[:3, 3] = -self.rotation.T @ self.position
        return m

    def focal(self, width: int, height: int) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) for a viewport of `width` x `height` pixels."""
        if self.intrinsics is not None and self.intrinsics[:2] == (width, height):
            return self.intrinsics[2:]
        if self.intrinsics is not None:
            # A snapped camera shown in a differently shaped viewport keeps its vertical field of view.
            w0, h0, _, fy0, _, cy0 = self.intrinsics
            f = fy0 * height / h0
            return f, f, width / 2.0, height / 2.0
        f = 0.5 * height / math.tan(0.5 * self.fov_y)
        return f, f, width / 2.0, height / 2.0

    # ------------------------------------------------------------ interaction
    def orbit(self, d_yaw: float, d_pitch: float) -> None:
        """Turn around the target by radians about world up and the camera's right axis."""
        r = _rotation(self.up, -d_yaw) @ self.rotation
        pitched = _rotation(r[:, 0], -d_pitch) @ r
        # Refuse to pitch over the pole, where the up axis would flip.
        if abs(float(pitched[:, 2] @ self.up)) < 0.995:
            r = pitched
        self.rotation = look_rotation(r[:, 2], self.up)
        self._moved()

    def look(self, d_yaw: float, d_pitch: float) -> None:
        """Fly-mode turn about the camera position (the target moves)."""
        pos = self.position
        self.orbit(d_yaw, d_pitch)
        self.target = pos + self.distance * self.forward

    def pan(self, dx_px: float, dy_px: float, height: int) -> None:
        """Move target and camera by a screen-space drag of (dx, dy) pixels."""
        fy = self.focal(max(1, height), max(1, height))[1]
        scale = self.distance / max(fy, 1e-6)
        self.target = self.target - scale * (dx_px * self.rotation[:, 0] + dy_px * self.rotation[:, 1])
        self._moved()

    def zoom(self, factor: float) -> None:
        """Multiply the distance to the target (factor < 1 moves closer)."""
        self.distance = float(np.clip(self.distance * factor, 1e-4, 1e6))
        self._moved()

    def fly(self, right: float, down: float, forward: float) -> None:
        """Translate camera and target along the camera axes (world units)."""
        self.target = self.target + self.rotation @ np.array([right, down, forward])
        self._moved()

    def frame(self, center: np.ndarray, radius: float) -> None:
        """Look at a sphere so it fills the view, keeping the current direction."""
        self.target = np.asarray(center, np.float64)
        self.distance = max(1e-3, float(radius)) / math.sin(0.5 * self.fov_y) * 1.1
        self._moved()

    def snap_to(self, cam: Camera, distance: float | None = None) -> None:
        """Take the pose and intrinsics of a training camera."""
        c2w = cam.camera_to_world
        self.rotation = c2w[:3, :3].copy()
        self.distance = float(distance or self.distance)
        self.target = c2w[:3, 3] + self.distance * self.rotation[:, 2]
        self.fov_y = 2.0 * math.atan(0.5 * cam.height / cam.fy)
        self.intrinsics = (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy)

    def _moved(self) -> None:
        self.intrinsics = None
