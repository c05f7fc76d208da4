"""View-correlated label errors: mistakes a 2D segmenter repeats from similar viewpoints.

A real zero-shot segmenter errs the same way from similar viewpoints (the
paper's Fig. 2): an object seen from one side looks like something else, the
same part of an object is confused whenever it is seen from that side, and a
mask overshoots an object's edge by an amount that depends on where the
camera stands. Such errors are consistent over a contiguous range of views,
so the Gaussians seen mostly from that range get a wrong majority label;
per-view errors (`coseg.synth.labels`) are not.

`ViewCorrelatedErrors` draws, once per scene and instance (seeded by
(seed, instance)), which errors an instance has and from which viewpoints:

- object: the whole instance takes one look-alike class in every view whose
  direction (the camera's azimuth around the instance's centre) lies in the
  instance's error range;
- part: the part of the instance on one side of a fixed 3D plane through it
  takes one wrong class in every view from its error range (floor, wall and
  ceiling included: their parts are regions of them);
- boundary bias: the mask grows over its neighbours by
  ``boundary_bias_px * cos(azimuth - direction)`` pixels (nothing from the
  opposite half of the directions), a different direction per instance.

An error range is the contiguous arc of azimuths that holds
``sector_fraction`` of the cameras that see the instance (train and test
cameras alike), starting at a random one of them. `for_view` turns this into
the errors of one camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ViewErrors:
    """The view-correlated errors of one camera (instance ids index the layout's instances)."""

    object_class: dict[int, int]
    """Instance -> the look-alike class the whole instance takes in this view."""
    part_class: dict[int, tuple[np.ndarray, float, int]]
    """Instance -> (plane normal [3], offset, wrong class): points p with p·normal > offset take the class."""
    bias_px: dict[int, float]
    """Instance -> how many pixels (at 320 wide) its mask overshoots its edges in this view."""


def _azimuth(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    d = np.asarray(points, np.float64)[..., :2] - centre[:2]
    return np.arctan2(d[..., 1], d[..., 0])


def _sees(view, points: np.ndarray) -> bool:
    """True when any of `points` [K, 3] projects inside the view in front of the camera."""
    w2c = np.linalg.inv(view.c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    front = z > 0.1
    u = view.fx * cam[front, 0] / z[front] + view.cx
    v = view.fy * cam[front, 1] / z[front] + view.cy
    return bool(np.any((u >= 0) & (u < view.width) & (v >= 0) & (v < view.height)))


def _box_points(box: np.ndarray) -> np.ndarray:
    """[9, 3]: the 8 corners and the centre of a [2, 3] (min, max) box."""
    lo, hi = box
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    return np.vstack([corners, (lo + hi) / 2])


def _error_range(azimuths: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[float, float]:
    """(start, width) in radians of the arc from a random camera holding `fraction` of `azimuths`."""
    a = np.sort(np.mod(azimuths, 2 * np.pi))
    n = len(a)
    m = max(1, int(round(fraction * n)))
    start = int(rng.integers(n))
    end = a[(start + m - 1) % n]
    return float(a[start]), float(np.mod(end - a[start], 2 * np.pi))


def _in_range(azimuth: float, arc: tuple[float, float]) -> bool:
    return float(np.mod(azimuth - arc[0], 2 * np.pi)) <= arc[1] + 1e-9


class ViewCorrelatedErrors:
    """Per-instance view-correlated errors of one scene.

    Args:
        layout: the scene's `coseg.synth.layout.Layout` (instance classes and boxes).
        views: every view of the scene (`coseg.synth.cameras.View`), train and test.
        confusions: class id -> plausible wrong class ids (`coseg.synth.labels.confusion_ids`).
        stuff_ids: class ids that are never confused as a whole (floor, wall, ceiling).
        seed: the scene's seed.
        cfg: `coseg.synth.labels.LabelNoiseConfig` (object_sector_probability,
            part_sector_probability, boundary_bias_probability, boundary_bias_px, sector_fraction).
    """

    def __init__(self, layout, views, confusions: dict[int, list[int]], stuff_ids: set[int], seed: int,
                 cfg) -> None:
        self.cfg = cfg
        self.centres = layout.instance_boxes.mean(axis=1)
        self.object: dict[int, tuple[int, tuple[float, float]]] = {}
        self.part: dict[int, tuple[np.ndarray, float, int, tuple[float, float]]] = {}
        self.bias: dict[int, float] = {}
        eyes = np.array([v.c2w[:3, 3] for v in views])
        for k, cls in enumerate(np.asarray(layout.instance_class)):
            rng = np.random.default_rng([seed, 5, k])
            draws = rng.random(3)
            wrong = confusions.get(int(cls), [])
            seen = [i for i, v in enumerate(views) if _sees(v, _box_points(layout.instance_boxes[k]))]
            if not seen:
                continue
            azimuths = _azimuth(eyes[seen], self.centres[k])
            if wrong and int(cls) not in stuff_ids and draws[0] < cfg.object_sector_probability:
                self.object[k] = (wrong[int(rng.integers(len(wrong)))],
                                  _error_range(azimuths, cfg.sector_fraction, rng))
            if wrong and draws[1] < cfg.part_sector_probability:
                phi, tilt = rng.uniform(0, 2 * np.pi), rng.uniform(-0.3, 0.3)
                normal = np.array([np.cos(phi), np.sin(phi), tilt])
                normal /= np.linalg.norm(normal)
                half = np.abs(normal) @ (layout.instance_boxes[k][1] - layout.instance_boxes[k][0]) / 2
                offset = float(normal @ self.centres[k] + rng.uniform(0.0, 0.5) * half)
                self.part[k] = (normal, offset, wrong[int(rng.integers(len(wrong)))],
                                _error_range(azimuths, cfg.sector_fraction, rng))
            if draws[2] < cfg.boundary_bias_probability and cfg.boundary_bias_px > 0:
                self.bias[k] = float(rng.uniform(0, 2 * np.pi))

    def for_view(self, camera_centre: np.ndarray) -> ViewErrors:
        """The errors seen from a camera at `camera_centre` [3] (world)."""
        out = ViewErrors({}, {}, {})
        for k, (wrong, arc) in self.object.items():
            if _in_range(float(_azimuth(camera_centre, self.centres[k])), arc):
                out.object_class[k] = wrong
        for k, (normal, offset, wrong, arc) in self.part.items():
            if _in_range(float(_azimuth(camera_centre, self.centres[k])), arc):
                out.part_class[k] = (normal, offset, wrong)
        for k, direction in self.bias.items():
            strength = np.cos(float(_azimuth(camera_centre, self.centres[k])) - direction)
            if strength > 0:
                out.bias_px[k] = float(self.cfg.boundary_bias_px * strength)
        return out

    def summary(self) -> dict:
        """How many instances carry each kind of view-correlated error."""
        return {"object_sector_instances": len(self.object), "part_sector_instances": len(self.part),
                "boundary_bias_instances": len(self.bias)}
