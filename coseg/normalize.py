"""Scene normalisation: one canonical working frame for every capture.

COLMAP and phone captures come in arbitrary units, origins and orientations.
The compute stages (building, segmentation, evaluation and rendering) work in
a *working frame* so that learning rates, densification thresholds, the
rasteriser's fixed near plane (0.2) and the RandLA-Net encoder see the same
scale on every capture. The working frame is a similarity of the input frame,

    x_work = s · R · x_input + t,

chosen from the training cameras in the manner of gsplat's
``normalize_world_space`` / nerfstudio's ``auto_scale_poses`` with
``orientation_method="up"`` (a reduced form: no PCA alignment of the points):
R turns the mean camera up direction (OpenCV -y) into +z and then about z so
that the first camera's (in name order) right axis points along +x as nearly
as it can (gsplat fixes this last freedom by a PCA of the points), the
centroid of the camera centres goes to the origin and the farthest camera
centre lands at distance 1 (so the 3DGS scene extent is 1.1 on every
capture). A capture moved by any similarity gets the same working frame.

Design (docs/building.md, "The working frame"): every result on disk
(``gaussians.ply``, ``segmented.ply``, exports, edits) and everything a person
sees (the studio, `coseg edit` vectors, `coseg render --what depth`) is in the
input's own frame, so an exported PLY overlays the original capture in other
viewers. The similarity is recorded once per run in config.json (section
``frame``) and applied on the way in by `working_inputs` / `Similarity.apply_*`;
results go back through its inverse before they are written. Checkpoints stay
in the working frame (internal files). A run without a ``frame`` section was
made before this existed and is in the identity frame.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from coseg.gaussians import Gaussians
from coseg.scene import Camera, Scene

log = logging.getLogger(__name__)

#: Metres per working-frame unit assumed for the spatial encoder: the distance of the
#: farthest training camera from the camera centroid in the procedural rooms the shipped
#: RandLA-Net weights were pretrained on (`coseg synth --kind room`, seeds 0-4: 2.25-2.47 m).
WORKING_UNIT_METRES = 2.4


@dataclass(frozen=True)
class Similarity:
    """x' = scale · rotation · x + translation (rotation proper, scale > 0)."""

    scale: float
    rotation: np.ndarray
    """[3, 3] float64."""
    translation: np.ndarray
    """[3] float64."""

    @classmethod
    def identity(cls) -> "Similarity":
        return cls(1.0, np.eye(3), np.zeros(3))

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and np.array_equal(self.rotation, np.eye(3)) and not self.translation.any()

    @property
    def matrix(self) -> np.ndarray:
        """[4, 4] homogeneous matrix."""
        m = np.eye(4)
        m[:3, :3] = self.scale * self.rotation
        m[:3, 3] = self.translation
        return m

    def inverse(self) -> "Similarity":
        rt = self.rotation.T
        return Similarity(1.0 / self.scale, rt, -(rt @ self.translation) / self.scale)

    def compose(self, first: "Similarity") -> "Similarity":
        """The similarity `self ∘ first` (apply `first`, then `self`)."""
        return Similarity(self.scale * first.scale, self.rotation @ first.rotation,
                          self.scale * self.rotation @ first.translation + self.translation)

    # ------------------------------------------------------------ applying
    def apply_points(self, xyz: np.ndarray) -> np.ndarray:
        """[P, 3] points (dtype kept)."""
        xyz = np.asarray(xyz)
        out = self.scale * (xyz.astype(np.float64) @ self.rotation.T) + self.translation
        return out.astype(xyz.dtype if np.issubdtype(xyz.dtype, np.floating) else np.float64)

    def apply_camera(self, cam: Camera) -> Camera:
        """The same view in the new frame: camera axes kept, camera-space distances times scale."""
        w2c = cam.world_to_camera
        new = np.eye(4)
        new[:3, :3] = w2c[:3, :3] @ self.rotation.T
        new[:3, 3] = self.scale * w2c[:3, 3] - new[:3, :3] @ self.translation
        return dataclasses.replace(cam, world_to_camera=new, depth_scale=cam.depth_scale * self.scale)

    def apply_scene(self, scene: Scene) -> Scene:
        """A copy of the scene with cameras, points and depth units in the new frame."""
        if self.is_identity:
            return scene
        points = None if scene.points_xyz is None else self.apply_points(scene.points_xyz)
        return dataclasses.replace(scene, cameras=[self.apply_camera(c) for c in scene.cameras],
                                   points_xyz=points)

    def apply_gaussians(self, g: Gaussians) -> Gaussians:
        """A copy of `g` moved into the new frame: positions, log-scales + log s, rotations and
        view-dependent colour (SH bands rotated with `coseg.edit.sh_rotation`)."""
        if self.is_identity:
            return g
        from coseg.edit.ops import matrix_to_quat, quat_multiply
        from coseg.edit.sh_rotation import rotate_sh_rest

        out = g.copy()
        out.means = self.apply_points(g.means).astype(np.float32)
        out.log_scales = (g.log_scales + np.float32(np.log(self.scale))).astype(np.float32)
        q = matrix_to_quat(self.rotation)
        out.quats = quat_multiply(q[None], g.quats.astype(np.float64)).astype(np.float32)
        out.sh_rest = rotate_sh_rest(g.sh_rest, self.rotation)
        return out

    # ------------------------------------------------------------ config.json
    def to_dict(self) -> dict:
        return {"scale": float(self.scale), "rotation": self.rotation.tolist(),
                "translation": self.translation.tolist(),
                "maps": "x_work = scale * rotation @ x_input + translation"}

    @classmethod
    def from_dict(cls, d: dict) -> "Similarity":
        from coseg.errors import InputError

        try:
            sim = cls(float(d["scale"]), np.asarray(d["rotation"], np.float64).reshape(3, 3),
                      np.asarray(d["translation"], np.float64).reshape(3))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"config.json: malformed frame section ({e})") from None
        if not (sim.scale > 0 and np.isfinite(sim.matrix).all()):
            raise InputError(f"config.json: frame scale must be positive and finite, got {sim.scale}")
        return sim


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[3, 3] smallest rotation taking unit vector a to unit vector b."""
    v, c = np.cross(a, b), float(np.dot(a, b))
    if c < -1 + 1e-9:  # opposite: half a turn about any axis orthogonal to a
        axis = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def canonical_frame(cameras: list[Camera], points: np.ndarray | None = None) -> Similarity:
    """The working frame of a scene (see module docstring).

    Args:
        cameras: the training cameras.
        points: [P, 3] scene points, used for the scale only when all cameras sit at one
            position (a capture that only rotates).
    """
    c2w = np.stack([c.camera_to_world for c in cameras])
    up = (c2w[:, :3, :3] @ np.array([0.0, -1.0, 0.0])).mean(0)
    rotation = (_rotation_between(up / np.linalg.norm(up), np.array([0.0, 0.0, 1.0]))
                if np.linalg.norm(up) > 1e-6 else np.eye(3))
    first = min(range(len(cameras)), key=lambda i: cameras[i].name)
    right = rotation @ c2w[first, :3, 0]
    if np.hypot(right[0], right[1]) > 1e-6:  # undefined only for a camera lying on its side
        yaw = -np.arctan2(right[1], right[0])
        rotation = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0],
                             [0.0, 0.0, 1.0]]) @ rotation
    centres = c2w[:, :3, 3]
    centroid = centres.mean(0)
    radius = float(np.linalg.norm(centres - centroid, axis=1).max())
    if radius < 1e-9 and points is not None and len(points):
        radius = float(np.median(np.linalg.norm(np.asarray(points, np.float64) - centroid, axis=1)))
        log.info("the cameras share one position; scaling the working frame by the points' median distance")
    scale = 1.0 / radius if radius > 1e-9 else 1.0
    return Similarity(scale, rotation, -scale * rotation @ centroid)


def align_similarity(src: np.ndarray, dst: np.ndarray) -> Similarity:
    """Least-squares similarity with dst ≈ S(src) (Umeyama 1991).

    Args:
        src, dst: [P, 3] corresponding points, P >= 3 not all collinear.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = float(np.trace(np.diag(sig) @ d) / (a ** 2).sum(1).mean())
    return Similarity(scale, rotation, mu_d - scale * rotation @ mu_s)


# ------------------------------------------------------------ runs
def recorded_frame(run) -> Similarity:
    """The working frame recorded in a run's config.json (identity for runs made before it)."""
    d = run.read_config().get("frame")
    return Similarity.identity() if d is None else Similarity.from_dict(d)


def run_frame(run, scene: Scene) -> Similarity:
    """The run's recorded working frame, or the scene's canonical frame, then recorded."""
    d = run.read_config().get("frame")
    if d is not None:
        return Similarity.from_dict(d)
    frame = canonical_frame(scene.train_cameras or scene.cameras, scene.points_xyz)
    run.update_config("frame", frame.to_dict())
    return frame


def working_inputs(run, scene: Scene, gaussians: Gaussians) -> tuple[Scene, Gaussians, Similarity]:
    """Scene and Gaussians of a run moved into its working frame (the one call for a stage
    that computes with Gaussians and cameras); returns them with the frame."""
    frame = run_frame(run, scene)
    return frame.apply_scene(scene), frame.apply_gaussians(gaussians), frame


def to_input_frame(run, gaussians: Gaussians) -> Gaussians:
    """Working-frame Gaussians of a run back in the input's frame, as results are written."""
    return recorded_frame(run).inverse().apply_gaussians(gaussians)
