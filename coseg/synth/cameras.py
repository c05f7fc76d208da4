"""Camera paths of the demo scenes and their NeRF (OpenGL) poses.

Poses are built in the project's OpenCV convention (`coseg.scene`): x right,
y down, z forward, principal point at the image centre with pixel (i, j)
centred at (i + 0.5, j + 0.5). `opengl_c2w` turns a camera-to-world matrix
into the NeRF/Blender one by flipping the camera's y and z axes, the inverse
of what the NeRF reader does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coseg.synth.layout import Layout


@dataclass
class View:
    """One rendered view."""

    name: str
    """Image stem (r_0000, ...), unique across splits."""
    split: str
    """"train" or "test"."""
    c2w: np.ndarray
    """[4, 4] float64 camera-to-world, OpenCV convention."""
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float


def look_at(eye, target) -> np.ndarray:
    """[4, 4] OpenCV camera-to-world of a camera at `eye` looking at `target`, world z up."""
    eye, target = np.asarray(eye, np.float64), np.asarray(target, np.float64)
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w


def opengl_c2w(c2w: np.ndarray) -> np.ndarray:
    """[4, 4] OpenGL/NeRF camera-to-world (camera looks along -z, y up) of an OpenCV one."""
    return c2w @ np.diag([1.0, -1.0, -1.0, 1.0])


def make_views(layout: Layout, train: int, test: int, width: int, height: int, hfov_deg: float,
               rng: np.random.Generator) -> list[View]:
    """Cameras along one path; every few positions a test view (novel but nearby).

    Args:
        layout: the scene.
        train, test: number of training and test views.
        width, height: image size in pixels.
        hfov_deg: horizontal field of view in degrees.
        rng: random state (jitter of positions and targets).

    Returns:
        train + test views in path order, named r_0000, r_0001, ...
    """
    n = train + test
    if layout.kind == "room":
        poses = _room_path(layout, n, rng)
    else:
        poses = _object_path(layout, n, hfov_deg, rng, low=layout.kind == "outdoor")
    test_idx = {int((k + 0.5) * n / test) for k in range(test)}
    f = (width / 2) / np.tan(np.radians(hfov_deg) / 2)
    return [View(f"r_{i:04d}", "test" if i in test_idx else "train", c2w, width, height,
                 float(f), float(f), width / 2, height / 2) for i, c2w in enumerate(poses)]


def _room_path(layout: Layout, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """An orbit at ~60% of the room's half-size, varied heights, looking across the room."""
    lo, hi = layout.bounds
    center, half = (lo + hi) / 2, (hi - lo) / 2
    phase = rng.uniform(0, 2 * np.pi)
    poses = []
    for i in range(n):
        for _ in range(50):
            a = phase + 2 * np.pi * (i + rng.uniform(-0.3, 0.3)) / n
            radial = 0.6 * rng.uniform(0.85, 1.15)
            eye = center + np.array([radial * half[0] * np.cos(a), radial * half[1] * np.sin(a), 0.0])
            eye[2] = lo[2] + 1.25 + 0.35 * (1 + np.sin(3 * a)) + rng.uniform(-0.1, 0.1)
            if not _inside_any(eye, layout.instance_boxes, 0.2):
                break
        across = center + np.array([-0.4 * (eye[0] - center[0]), -0.4 * (eye[1] - center[1]), 0.0])
        target = across + np.array([rng.uniform(-0.9, 0.9) * half[0] * 0.5, rng.uniform(-0.9, 0.9) * half[1] * 0.5,
                                    0.0])
        target[2] = lo[2] + rng.uniform(0.3, 1.2)
        poses.append(look_at(eye, target))
    return poses


def _object_path(layout: Layout, n: int, hfov_deg: float, rng: np.random.Generator,
                 low: bool = False) -> list[np.ndarray]:
    """A ring around the object group at elevations of about 5-65 degrees, looking at its centre.

    With `low` (outdoors) the elevations are about 5-25 degrees, so the sky fills the upper
    part of most views.
    """
    lo, hi = layout.bounds
    center = (lo + hi) / 2
    radius = 0.5 * np.linalg.norm(hi - lo)
    dist = radius / np.tan(0.85 * np.radians(hfov_deg) / 2)
    phase = rng.uniform(0, 2 * np.pi)
    poses = []
    for i in range(n):
        a = phase + 2 * np.pi * (i + rng.uniform(-0.3, 0.3)) / n
        elev = np.radians((15 + 8 * np.sin(3 * a) if low else 35 + 25 * np.sin(3 * a)) + rng.uniform(-5, 5))
        r = dist * rng.uniform(0.9, 1.1)
        eye = center + r * np.array([np.cos(a) * np.cos(elev), np.sin(a) * np.cos(elev), np.sin(elev)])
        poses.append(look_at(eye, center + rng.normal(0, 0.03 * radius, 3)))
    return poses


def _inside_any(p: np.ndarray, boxes: np.ndarray, margin: float) -> bool:
    """Whether `p` lies within any of the [I, 2, 3] boxes grown by `margin`."""
    return bool(np.any(np.all((p >= boxes[:, 0] - margin) & (p <= boxes[:, 1] + margin), axis=1)))
