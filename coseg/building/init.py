"""Initial Gaussians of the building stage.

Sources, in order of preference (the first that gives points seen by a
training camera wins; the choice is logged and recorded in config.json):

1. ``scene`` — the scene's points (``points3d.ply`` or COLMAP ``points3D``,
   both arrive as ``Scene.points_xyz / points_rgb``);
2. ``depth`` — training depth maps back-projected on a regular pixel grid
   (stride chosen to give about ``init_max_points`` points), coloured by the image;
3. ``random`` — points drawn uniformly in the ball of radius ``extent`` around
   the point nearest to all optical axes, kept when inside at least one training
   frustum, grey colour with noise (a reduced form of 3DGS's random cube init).

When the scene's points are fewer than ``init_min_points`` (sparse SfM
points) and depth maps exist, back-projected depth points are added (method
``scene+depth``): a dense start of small Gaussians instead of few large ones.

``init_method`` other than "auto" uses that one source only (e.g. "random" to
ignore the SfM points of `coseg poses`, "scene" to insist on them).

Points beyond ``init_max_points`` are randomly subsampled (seeded). Each
Gaussian is isotropic with scale = root-mean-square distance to its 3 nearest
neighbours (3DGS's rule, scipy cKDTree), opacity ``init_opacity``, identity
rotation, DC colour from the point colour, higher SH bands zero.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.spatial import cKDTree

from coseg.building.config import BuildConfig
from coseg.errors import InputError
from coseg.gaussians import Gaussians
from coseg.scene import Camera, Scene

log = logging.getLogger(__name__)

NEAR = 0.2


def in_frustum(xyz: np.ndarray, cam: Camera) -> np.ndarray:
    """Points of xyz [P, 3] that project inside `cam`'s image in front of it: bool [P]."""
    t = xyz @ cam.world_to_camera[:3, :3].T + cam.world_to_camera[:3, 3]
    z = t[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = cam.fx * t[:, 0] / z + cam.cx
        v = cam.fy * t[:, 1] / z + cam.cy
    return (z > NEAR) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)


def seen_by_any(xyz: np.ndarray, cameras: list[Camera]) -> np.ndarray:
    """bool [P]: the point is inside at least one camera's frustum."""
    mask = np.zeros(len(xyz), bool)
    for cam in cameras:
        mask |= in_frustum(xyz, cam)
    return mask


def knn_scales(xyz: np.ndarray) -> np.ndarray:
    """[P] root-mean-square distance of each point to its 3 nearest neighbours."""
    if len(xyz) < 2:
        return np.full(len(xyz), 0.01, np.float32)
    k = min(4, len(xyz))
    dist, _ = cKDTree(xyz).query(xyz, k=k)
    d2 = np.mean(dist[:, 1:] ** 2, axis=1)
    return np.sqrt(np.maximum(d2, 1e-7)).astype(np.float32)


def _from_scene(scene: Scene, cams: list[Camera]) -> tuple[np.ndarray, np.ndarray] | None:
    if scene.points_xyz is None or len(scene.points_xyz) == 0:
        return None
    xyz = np.asarray(scene.points_xyz, np.float64)
    rgb = (np.full_like(xyz, 0.5) if scene.points_rgb is None
           else np.asarray(scene.points_rgb, np.float64))
    seen = seen_by_any(xyz, cams)
    if not seen.any():
        log.warning("none of the scene's %d initial points is seen by a training camera; "
                    "falling back to the next initialisation", len(xyz))
        return None
    return xyz[seen], rgb[seen]


def _from_depth(scene: Scene, cams: list[Camera], target: int) -> tuple[np.ndarray, np.ndarray] | None:
    with_depth = [c for c in cams if c.depth_path is not None]
    if not with_depth:
        return None
    per_view = max(1, target // len(with_depth))
    xyzs, rgbs = [], []
    for cam in with_depth:
        depth = scene.load_depth(cam)
        image = scene.load_image(cam)
        stride = max(1, int(np.sqrt(cam.width * cam.height / per_view)))
        j, i = np.mgrid[stride // 2:cam.height:stride, stride // 2:cam.width:stride]
        z = depth[j, i]
        ok = z > 0
        if not ok.any():
            continue
        i, j, z = i[ok], j[ok], z[ok].astype(np.float64)
        pts_cam = np.stack([(i + 0.5 - cam.cx) / cam.fx * z, (j + 0.5 - cam.cy) / cam.fy * z, z], -1)
        c2w = cam.camera_to_world
        xyzs.append(pts_cam @ c2w[:3, :3].T + c2w[:3, 3])
        rgbs.append(image[j, i].astype(np.float64))
    if not xyzs:
        log.warning("the training depth maps hold no valid depth; falling back to random points")
        return None
    return np.concatenate(xyzs), np.concatenate(rgbs)


def _axes_centre(cams: list[Camera]) -> np.ndarray:
    """Least-squares point nearest to all optical axes (the mean centre if degenerate)."""
    a = np.zeros((3, 3))
    b = np.zeros(3)
    for cam in cams:
        c2w = cam.camera_to_world
        d = c2w[:3, 2] / np.linalg.norm(c2w[:3, 2])
        proj = np.eye(3) - np.outer(d, d)
        a += proj
        b += proj @ c2w[:3, 3]
    if np.linalg.matrix_rank(a) < 3:
        return np.mean([c.center for c in cams], axis=0)
    return np.linalg.solve(a, b)


def _random(cams: list[Camera], n: int, extent: float, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray] | None:
    centre = _axes_centre(cams)
    kept: list[np.ndarray] = []
    total = 0
    for _ in range(20):
        d = rng.normal(size=(4 * n, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        pts = centre + d * extent * rng.random((4 * n, 1)) ** (1.0 / 3.0)
        pts = pts[seen_by_any(pts, cams)]
        kept.append(pts)
        total += len(pts)
        if total >= n:
            break
    xyz = np.concatenate(kept)[:n]
    if len(xyz) == 0:
        return None
    rgb = np.clip(0.5 + 0.1 * rng.normal(size=xyz.shape), 0.0, 1.0)
    return xyz, rgb


def init_gaussians(scene: Scene, config: BuildConfig, extent: float) -> tuple[Gaussians, dict]:
    """Initial Gaussians for a scene (see module docstring for the order of sources).

    Args:
        scene: the scene; its training cameras decide what counts as seen.
        config: building settings (init_method, init_max_points, init_min_points, init_random_points,
            init_opacity, max_sh_degree, seed).
        extent: scene extent (radius of the random-points ball).

    Returns:
        (gaussians with N <= init_max_points, report {"method", "num_points", "available"}).

    Raises:
        InputError: no source gives a single point inside a training frustum.
    """
    rng = np.random.default_rng(config.seed)
    cams = scene.train_cameras
    tried = []
    points = None
    methods = ("scene", "depth", "random") if config.init_method == "auto" else (config.init_method,)
    for method in methods:
        if method == "scene":
            points = _from_scene(scene, cams)
        elif method == "depth":
            points = _from_depth(scene, cams, config.init_max_points)
        else:
            points = _random(cams, config.init_random_points, extent, rng)
        tried.append(method)
        if points is not None:
            break
    if points is None and config.init_method != "auto":
        raise InputError(f"{scene.root}: init_method={config.init_method} gives no initial point inside "
                         "a training camera's view (no scene points or depth maps?); use init_method=auto")
    if points is None:
        raise InputError(f"{scene.root}: cannot initialise Gaussians: no scene points, depth maps "
                         f"or random points lie inside any training camera's view "
                         f"(tried {', '.join(tried)}); check the camera poses")
    xyz, rgb = points
    if method == "scene" and config.init_method == "auto" and len(xyz) < config.init_min_points:
        extra = _from_depth(scene, cams, config.init_max_points - len(xyz))
        if extra is not None:
            xyz, rgb = np.concatenate([xyz, extra[0]]), np.concatenate([rgb, extra[1]])
            method = "scene+depth"
    available = len(xyz)
    if available > config.init_max_points:
        pick = np.sort(rng.choice(available, config.init_max_points, replace=False))
        xyz, rgb = xyz[pick], rgb[pick]
    g = Gaussians.from_points(xyz.astype(np.float32), np.clip(rgb, 0, 1).astype(np.float32),
                              scale=knn_scales(xyz), opacity=config.init_opacity,
                              sh_degree=config.max_sh_degree)
    report = {"method": method, "num_points": len(g), "available": int(available), "tried": tried}
    log.info("initialised %d Gaussians from %s points (%d available)", len(g), method, available)
    return g, report
