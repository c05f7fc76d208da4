"""A tiny posed scene for the building tests, and tests of initialisation and scene checks.

`make_scene` writes PNG images of coloured points splatted (z-buffered discs)
from cameras on a circle around the origin, so the views agree in 3D.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coseg.building.config import BuildConfig
from coseg.building.init import init_gaussians, knn_scales, seen_by_any
from coseg.building.trainer import check_training_scene, view_index
from coseg.errors import CosegError, InputError
from coseg.io.images import write_png
from coseg.scene import Camera, Scene


def look_at(center: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[4, 4] OpenCV world-to-camera of a camera at `center` looking at `target` (world z up)."""
    z = target - center
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    rot = np.stack([x, y, z])
    w2c = np.eye(4)
    w2c[:3, :3] = rot
    w2c[:3, 3] = -rot @ center
    return w2c


def make_scene(root: Path, n_views: int = 8, width: int = 64, height: int = 48, n_points: int = 300,
               seed: int = 0, with_points: bool = True, test_every: int = 4) -> Scene:
    """Write images to `root` and return the Scene (every `test_every`-th view is a test view)."""
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-0.6, 0.6, (n_points, 3))
    rgb = rng.uniform(0.1, 0.9, (n_points, 3))
    root.mkdir(parents=True, exist_ok=True)
    cams = []
    for k in range(n_views):
        ang = 2 * np.pi * k / n_views
        center = np.array([3.0 * np.cos(ang), 3.0 * np.sin(ang), 1.0])
        cam = Camera(name=f"view_{k:03d}", image_path=root / f"view_{k:03d}.png", width=width,
                     height=height, fx=60.0, fy=60.0, cx=width / 2, cy=height / 2,
                     world_to_camera=look_at(center, np.zeros(3)),
                     split="test" if k % test_every == test_every - 1 else "train")
        write_png(cam.image_path, _splat(xyz, rgb, cam))
        cams.append(cam)
    return Scene(root=root, format="test", cameras=cams,
                 points_xyz=xyz.astype(np.float32) if with_points else None,
                 points_rgb=rgb.astype(np.float32) if with_points else None)


def write_nerf_folder(scene: Scene) -> Path:
    """Write transforms_{train,test}.json and points3d.ply beside the scene's images; returns the root."""
    import json

    from coseg.io.ply import write_point_cloud

    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV camera axes -> OpenGL
    for split in ("train", "test"):
        frames = [{"file_path": c.image_path.name, "transform_matrix": (c.camera_to_world @ flip).tolist()}
                  for c in scene.split(split)]
        cam = scene.cameras[0]
        meta = {"fl_x": cam.fx, "fl_y": cam.fy, "cx": cam.cx, "cy": cam.cy, "w": cam.width,
                "h": cam.height, "frames": frames}
        (scene.root / f"transforms_{split}.json").write_text(json.dumps(meta))
    if scene.points_xyz is not None:
        write_point_cloud(scene.root / "points3d.ply", scene.points_xyz, scene.points_rgb)
    return scene.root


def _splat(xyz: np.ndarray, rgb: np.ndarray, cam: Camera, radius: float = 2.5) -> np.ndarray:
    t = xyz @ cam.world_to_camera[:3, :3].T + cam.world_to_camera[:3, 3]
    u = cam.fx * t[:, 0] / t[:, 2] + cam.cx
    v = cam.fy * t[:, 1] / t[:, 2] + cam.cy
    img = np.full((cam.height, cam.width, 3), 0.05, np.float32)
    zbuf = np.full((cam.height, cam.width), np.inf)
    jj, ii = np.mgrid[0:cam.height, 0:cam.width] + 0.5
    for p in np.argsort(-t[:, 2]):
        disc = (ii - u[p]) ** 2 + (jj - v[p]) ** 2 <= radius ** 2
        disc &= t[p, 2] < zbuf
        img[disc] = rgb[p]
        zbuf[disc] = t[p, 2]
    return img


@pytest.fixture
def tiny_scene(tmp_path) -> Scene:
    return make_scene(tmp_path / "scene")


def test_init_prefers_scene_points(tiny_scene):
    g, report = init_gaussians(tiny_scene, BuildConfig(init_max_points=100), tiny_scene.extent())
    assert report["method"] == "scene"
    assert len(g) == 100 and report["available"] == 300
    assert g.sh_rest.shape == (100, 15, 3)
    np.testing.assert_allclose(g.opacities, 0.1, rtol=1e-5)
    np.testing.assert_array_equal(g.quats, np.tile([1, 0, 0, 0], (100, 1)))
    # DC colour reproduces a scene point colour
    i = np.flatnonzero((np.abs(tiny_scene.points_xyz - g.means[0]) < 1e-6).all(1))[0]
    np.testing.assert_allclose(g.colors[0], tiny_scene.points_rgb[i], atol=1e-5)


def test_init_method_chooses_one_source(tiny_scene):
    g, report = init_gaussians(tiny_scene, BuildConfig(init_method="random", init_random_points=150),
                               tiny_scene.extent())
    assert report["method"] == "random" and report["tried"] == ["random"] and 0 < len(g) <= 150
    _, report = init_gaussians(tiny_scene, BuildConfig(init_method="scene"), tiny_scene.extent())
    assert report["method"] == "scene"
    tiny_scene.points_xyz = None
    with pytest.raises(InputError, match="init_method=scene gives no initial point"):
        init_gaussians(tiny_scene, BuildConfig(init_method="scene"), tiny_scene.extent())
    with pytest.raises(CosegError, match="init_method='grid'"):
        BuildConfig(init_method="grid")


def test_knn_scales_is_rms_of_three_neighbours():
    xyz = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3], [10, 10, 10]], float)
    s = knn_scales(xyz)
    assert s[0] == pytest.approx(np.sqrt((1 + 4 + 9) / 3))


def test_init_falls_back_to_random_when_cameras_see_no_points(tiny_scene, caplog):
    tiny_scene.points_xyz = tiny_scene.points_xyz + 100.0  # far behind every camera's view
    g, report = init_gaussians(tiny_scene, BuildConfig(init_random_points=200), tiny_scene.extent())
    assert report["method"] == "random" and report["tried"] == ["scene", "depth", "random"]
    assert "falling back" in caplog.text
    assert 0 < len(g) <= 200
    assert seen_by_any(g.means.astype(np.float64), tiny_scene.train_cameras).all()


def test_init_from_depth_maps(tmp_path):
    scene = make_scene(tmp_path / "s", with_points=False)
    for cam in scene.train_cameras:
        cam.depth_path = tmp_path / f"{cam.name}.npy"
        np.save(cam.depth_path, np.full((cam.height, cam.width), 3.0, np.float32))
    g, report = init_gaussians(scene, BuildConfig(init_max_points=600), scene.extent())
    assert report["method"] == "depth"
    cam = scene.train_cameras[0]
    t = g.means @ cam.world_to_camera[:3, :3].T + cam.world_to_camera[:3, 3]
    # some points come from this view at z = 3 exactly
    assert np.isclose(t[:, 2], 3.0, atol=1e-4).sum() > 10


def test_sparse_scene_points_are_supplemented_by_depth(tmp_path):
    scene = make_scene(tmp_path / "s")
    for cam in scene.train_cameras:
        cam.depth_path = tmp_path / f"{cam.name}.npy"
        np.save(cam.depth_path, np.full((cam.height, cam.width), 3.0, np.float32))
    g, report = init_gaussians(scene, BuildConfig(init_min_points=1000, init_max_points=900), scene.extent())
    assert report["method"] == "scene+depth" and 300 < report["available"]
    g, report = init_gaussians(scene, BuildConfig(init_min_points=100), scene.extent())
    assert report["method"] == "scene" and len(g) == 300


def test_init_errors_when_nothing_is_visible(tmp_path):
    scene = make_scene(tmp_path / "s")
    for cam in scene.cameras:  # principal point far off the image: no world point projects inside
        cam.cx = -1e6
    with pytest.raises(InputError, match="cannot initialise"):
        init_gaussians(scene, BuildConfig(init_random_points=100), scene.extent())


def test_scene_checks(tiny_scene):
    check_training_scene(tiny_scene)
    two = Scene(tiny_scene.root, "test", tiny_scene.train_cameras[:1] + tiny_scene.test_cameras)
    with pytest.raises(InputError, match="1 training view"):
        check_training_scene(two)
    tiny_scene.train_cameras[1].width = 32
    with pytest.raises(InputError, match="mixed sizes"):
        check_training_scene(tiny_scene)


def test_view_order_is_a_permutation_per_epoch():
    order = [view_index(it, 6, seed=3) for it in range(1, 13)]
    assert sorted(order[:6]) == list(range(6)) and sorted(order[6:]) == list(range(6))
    assert order == [view_index(it, 6, seed=3) for it in range(1, 13)]
    assert order != [view_index(it, 6, seed=4) for it in range(1, 13)]
