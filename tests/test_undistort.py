"""Lens models and undistortion: projection agreement, masks, cache, bad lenses."""

import json
import re

import imageio.v3 as iio
import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from coseg.errors import InputError
from coseg.readers import read_scene
from coseg.scene_settings import ReadSettings

W0, H0 = 120, 90
F, CX, CY = 100.0, 61.3, 44.2

#: COLMAP model -> params (the numbers are arbitrary but strong enough to matter).
COLMAP_LENSES = {
    "SIMPLE_RADIAL": [F, CX, CY, -0.12],
    "RADIAL": [F, CX, CY, -0.1, 0.03],
    "OPENCV": [F, F * 1.02, CX, CY, -0.1, 0.02, 0.004, -0.003],
    "FULL_OPENCV": [F, F * 1.02, CX, CY, 0.05, -0.02, 0.003, 0.002, 0.01, 0.12, -0.03, 0.01],
    "OPENCV_FISHEYE": [F, F, CX, CY, 0.05, -0.02, 0.01, -0.004],
    "SIMPLE_RADIAL_FISHEYE": [F, CX, CY, 0.06],
}


def reference_project(model: str, params, xyz: np.ndarray) -> np.ndarray:
    """COLMAP's camera-model equations written out in numpy (independent of OpenCV)."""
    x, y = xyz[:, 0] / xyz[:, 2], xyz[:, 1] / xyz[:, 2]
    p = list(params)
    if model in ("SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE"):
        fx = fy = p[0]
        cx, cy, e = p[1], p[2], p[3:]
    else:
        fx, fy, cx, cy, e = p[0], p[1], p[2], p[3], p[4:]
    r2 = x * x + y * y
    if model.endswith("FISHEYE"):
        k = (e + [0.0] * 4)[:4]
        r = np.sqrt(r2)
        t = np.arctan(r)
        td = t * (1 + k[0] * t ** 2 + k[1] * t ** 4 + k[2] * t ** 6 + k[3] * t ** 8)
        xd, yd = x * td / r, y * td / r
    else:
        # SIMPLE_RADIAL: k; RADIAL: k1 k2; OPENCV: k1 k2 p1 p2; FULL_OPENCV: k1 k2 p1 p2 k3 k4 k5 k6
        k1, k2, p1, p2, k3, k4, k5, k6 = (e + [0.0] * 8)[:8]
        radial = (1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3) / (1 + k4 * r2 + k5 * r2 ** 2 + k6 * r2 ** 3)
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + 2 * p2 * x * y + p1 * (r2 + 2 * y * y)
    return np.column_stack([fx * xd + cx, fy * yd + cy])


def coordinate_photos(folder, view="a"):
    """Two 16-bit grey photos of one view: `<view>x.png` holds each pixel centre's x / W0, `<view>y.png` y / H0."""
    xs, ys = np.meshgrid((np.arange(W0) + 0.5) / W0, (np.arange(H0) + 0.5) / H0)
    folder.mkdir(parents=True, exist_ok=True)
    for axis, ramp in (("x", xs), ("y", ys)):
        iio.imwrite(folder / f"{view}{axis}.png", np.round(ramp * 65535).astype(np.uint16))


def colmap_scene(root, model, params):
    coordinate_photos(root / "images")
    d = root / "sparse" / "0"
    d.mkdir(parents=True)
    (d / "cameras.txt").write_text(f"1 {model} {W0} {H0} {' '.join(map(str, params))}\n")
    (d / "images.txt").write_text("1 1 0 0 0 0 0 0 1 ax.png\n\n2 1 0 0 0 0 0 0 1 ay.png\n\n")
    return root


def nerf_scene(root, **lens):
    coordinate_photos(root / "images")
    frames = [{"file_path": f"images/a{axis}.png", "transform_matrix": np.diag([1.0, -1, -1, 1]).tolist()}
              for axis in "xy"]
    meta = {"fl_x": F, "fl_y": F, "cx": CX, "cy": CY, "w": W0, "h": H0, **lens, "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


def check_agreement(scene, model, params, view="a", n=3000):
    """Every working pixel shows the photo point the distorted model projects its ray to (< 0.5 px)."""
    cam = scene.camera(f"{view}x")
    xs, ys = scene.load_image(cam)[..., 0], scene.load_image(scene.camera(f"{view}y"))[..., 0]
    rng = np.random.default_rng(0)
    pix = rng.uniform([1.0, 1.0], [cam.width - 1.0, cam.height - 1.0], (n, 2))
    rays = np.column_stack([(pix[:, 0] - cam.cx) / cam.fx, (pix[:, 1] - cam.cy) / cam.fy, np.ones(n)])
    points = rays * rng.uniform(0.5, 5.0, (n, 1))  # any depth along the ray
    expected = reference_project(model, params, points)
    # the photo's coordinate ramp is linear only away from its border (edge replication there)
    inside = np.all((expected > 1.0) & (expected < [W0 - 1.0, H0 - 1.0]), axis=1)
    assert inside.mean() > 0.8
    at = [pix[inside, 1] - 0.5, pix[inside, 0] - 0.5]
    seen = np.column_stack([map_coordinates(xs, at, order=1) * W0, map_coordinates(ys, at, order=1) * H0])
    err = np.linalg.norm(seen - expected[inside], axis=1)
    assert err.max() < 0.5, (model, err.max())
    return cam


@pytest.mark.parametrize("model", list(COLMAP_LENSES))
@pytest.mark.parametrize("downscale", [1.0, 1.7])
def test_colmap_lenses_project_like_the_undistorted_pinhole(tmp_path, model, downscale):
    scene = read_scene(colmap_scene(tmp_path, model, COLMAP_LENSES[model]), downscale=downscale)
    cam = check_agreement(scene, model, COLMAP_LENSES[model])
    assert cam.distortion is None and cam.source.distortion is not None
    assert (cam.width, cam.height) == (round(W0 / downscale), round(H0 / downscale))


@pytest.mark.parametrize("lens, model, params", [
    ({"k1": -0.1, "k2": 0.02, "p1": 0.004, "p2": -0.003}, "OPENCV", [F, F, CX, CY, -0.1, 0.02, 0.004, -0.003]),
    ({"k1": 0.05, "k2": -0.02, "k3": 0.01, "p1": 0.003, "p2": 0.002}, "FULL_OPENCV",
     [F, F, CX, CY, 0.05, -0.02, 0.003, 0.002, 0.01, 0, 0, 0]),
    ({"camera_model": "OPENCV_FISHEYE", "k1": 0.05, "k2": -0.02, "k3": 0.01, "k4": -0.004}, "OPENCV_FISHEYE",
     [F, F, CX, CY, 0.05, -0.02, 0.01, -0.004]),
    ({"is_fisheye": True, "k1": 0.05}, "OPENCV_FISHEYE", [F, F, CX, CY, 0.05]),
])
def test_transforms_json_lenses(tmp_path, lens, model, params):
    check_agreement(read_scene(nerf_scene(tmp_path, **lens)), model, params)


def test_alpha_one_keeps_the_photo_and_masks_the_border(tmp_path):
    root = colmap_scene(tmp_path / "s", "SIMPLE_RADIAL", [F, CX, CY, -0.12])
    (root / "gt").mkdir()
    iio.imwrite(root / "gt" / "ax.png", np.full((H0, W0), 3, np.uint8))
    crop = read_scene(root)
    assert crop.load_valid_mask(crop.cameras[0]) is None  # alpha 0: every pixel sees the photo
    whole = read_scene(root, settings=ReadSettings(undistort_alpha=1.0))
    cam = whole.camera("ax")
    valid = whole.load_valid_mask(cam)
    # barrel distortion: the photo's edge midpoints bow inwards, leaving pixels there without photo
    assert valid is not None and 0.5 < valid.mean() < 1.0 and not valid[0, W0 // 2] and valid[H0 // 2, W0 // 2]
    assert cam.fx < crop.cameras[0].fx  # a wider view
    gt = whole.load_gt(cam)
    # id maps: nearest samples, never blended; pixels outside the photo are void (255)
    assert set(np.unique(gt)) == {3, 255}
    assert np.all(gt[~valid] == 255) and np.all(gt[valid] == 3)
    check_agreement(whole, "SIMPLE_RADIAL", [F, CX, CY, -0.12])


def test_resampled_pixels_are_cached_by_content(tmp_path):
    root = colmap_scene(tmp_path / "s", "OPENCV", COLMAP_LENSES["OPENCV"])
    cache = tmp_path / "cache"
    scene = read_scene(root, cache=cache)
    first = scene.load_image(scene.cameras[0])
    files = list(cache.glob("*.npy"))
    assert len(files) == 1
    np.testing.assert_array_equal(read_scene(root, cache=cache).load_image(scene.cameras[0]), first)
    assert list(cache.glob("*.npy")) == files  # a hit: nothing new
    iio.imwrite(root / "images" / "ax.png", np.zeros((H0, W0), np.uint16))  # new content, new key
    assert read_scene(root, cache=cache).load_image(scene.cameras[0]).max() == 0
    assert len(list(cache.glob("*.npy"))) == 2
    from coseg.io.safety import OutputRefused

    with pytest.raises(OutputRefused, match="--cache inside an input folder"):
        read_scene(root, cache=root / "images" / "cache")


@pytest.mark.parametrize("model, params, message", [
    ("SIMPLE_RADIAL", [F, CX, CY, -0.9], r"(too strong to undistort|folds over)"),
    ("SIMPLE_RADIAL", [F, CX, CY, 3.0], r"too strong to undistort.*keep \d+% of the photo"),
    ("FOV", [F, F, CX, CY, 0.5], r"camera 1 uses the FOV model, which is not supported"),
])
def test_bad_lenses_are_one_line(tmp_path, capsys, model, params, message):
    root = colmap_scene(tmp_path, model, params)
    with pytest.raises(InputError, match=message) as e:
        read_scene(root)
    assert "\n" not in str(e.value)
    # As a user meets it: `coseg info` and `coseg build` print that one line and nothing else.
    from coseg.cli import main

    for argv in (["info", str(root)], ["build", str(root), "--out", str(tmp_path / "run")]):
        assert main(argv) == 1
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and re.search(message, err[0]), err
    assert not (tmp_path / "run").exists()


def test_mixed_cameras_keep_their_own_lenses(tmp_path):
    root = colmap_scene(tmp_path, "OPENCV", COLMAP_LENSES["OPENCV"])
    coordinate_photos(root / "images", view="b")
    d = root / "sparse" / "0"
    fisheye = COLMAP_LENSES["OPENCV_FISHEYE"]
    (d / "cameras.txt").write_text(f"1 OPENCV {W0} {H0} {' '.join(map(str, COLMAP_LENSES['OPENCV']))}\n"
                                   f"2 OPENCV_FISHEYE {W0} {H0} {' '.join(map(str, fisheye))}\n")
    (d / "images.txt").write_text("".join(f"{i + 1} 1 0 0 0 0 0 0 {1 + i // 2} {name}\n\n"
                                          for i, name in enumerate(["ax.png", "ay.png", "bx.png", "by.png"])))
    scene = read_scene(root)
    a, b = scene.camera("ax"), scene.camera("bx")
    assert a.source.distortion.model == "OPENCV" and b.source.distortion.model == "OPENCV_FISHEYE"
    assert (a.fx, a.cx) != (b.fx, b.cx)
    check_agreement(scene, "OPENCV", COLMAP_LENSES["OPENCV"], view="a")
    check_agreement(scene, "OPENCV_FISHEYE", COLMAP_LENSES["OPENCV_FISHEYE"], view="b")


def test_building_loss_ignores_pixels_without_photo():
    import torch

    from coseg.building.losses import photometric_loss

    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(20, 24, 3, generator=gen)
    valid = torch.ones(20, 24, 1, dtype=torch.bool)
    valid[:, :5] = False
    img = torch.rand(20, 24, 3, generator=gen, requires_grad=True)
    loss, _, _ = photometric_loss(img, ref, 0.8, valid)
    loss.backward()
    assert img.grad[:, :5].abs().max() == 0 and img.grad[:, 5:].abs().max() > 0
    other = img.detach().clone()
    other[:, :5] = 1.0 - other[:, :5]  # anything rendered on the border changes nothing
    assert torch.isclose(photometric_loss(other, ref, 0.8, valid)[0], loss.detach())
