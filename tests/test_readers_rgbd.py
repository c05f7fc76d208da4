"""Replica (Semantic-NeRF) and ScanNet (SensReader export) scene readers."""

import logging

import imageio.v3 as iio
import numpy as np
import pytest

from coseg.errors import InputError
from coseg.readers import detect_format, read_scene

W, H = 8, 6
# OpenCV camera-to-world of a camera at (x, -5, 0) looking along +y: image right +x, down -z.


def c2w_at(x):
    return np.array([[1, 0, 0, x], [0, 0, 1, -5], [0, -1, 0, 0], [0, 0, 0, 1]], float)


def project(cam, point):
    p = cam.world_to_camera @ np.append(point, 1.0)
    uvw = cam.K @ p[:3]
    return uvw[:2] / uvw[2]


# ------------------------------------------------------------------ Replica
def replica_scene(root, n=12):
    for d in ("rgb", "semantic_class", "depth"):
        (root / d).mkdir(parents=True)
    for i in reversed(range(n)):
        iio.imwrite(root / "rgb" / f"rgb_{i}.png", np.full((H, W, 3), i, np.uint8))
        iio.imwrite(root / "semantic_class" / f"semantic_class_{i}.png", np.full((H, W), i % 4, np.uint8))
        iio.imwrite(root / "depth" / f"depth_{i}.png", np.full((H, W), 1000 + i, np.uint16))
    lines = [" ".join(str(float(v)) for v in c2w_at(i).ravel()) for i in range(n)]
    (root / "traj_w_c.txt").write_text("\n".join(lines) + "\n")
    return root


def test_replica(tmp_path):
    root = replica_scene(tmp_path)
    assert detect_format(root) == "replica"
    scene = read_scene(root)
    assert scene.format == "replica"
    names = [c.name for c in scene.cameras]
    assert names == [f"rgb_{i}" for i in range(12)]  # numeric, not string, order
    assert [c.name for c in scene.train_cameras] == ["rgb_0", "rgb_5", "rgb_10"]
    assert [c.name for c in scene.test_cameras] == ["rgb_2", "rgb_7"]
    assert len(scene.split("val")) == 7
    cam = scene.camera("rgb_10")
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == pytest.approx((4.0, 4.0, 4.0, 3.0))  # hfov 90
    np.testing.assert_allclose(cam.center, [10, -5, 0], atol=1e-12)
    # Poses are OpenCV camera-to-world: 1 right and 0.5 up at depth 5.
    np.testing.assert_allclose(project(cam, [11, 0, 0.5]), [4 + 4 / 5, 3 - 4 * 0.5 / 5])
    assert scene.load_image(cam)[0, 0, 0] == pytest.approx(10 / 255)
    np.testing.assert_array_equal(scene.load_gt(cam), np.full((H, W), 2))
    np.testing.assert_allclose(scene.load_depth(cam), np.full((H, W), 1.010), rtol=1e-6)
    assert scene.load_labels(cam) is None
    half = read_scene(root, downscale=2)
    assert half.load_depth(half.camera("rgb_3")).shape == (3, 4)


def test_replica_split_file_and_labels(tmp_path):
    root = replica_scene(tmp_path, n=4)
    (root / "train.txt").write_text("rgb_1\nrgb_3.png\n")
    (root / "labels").mkdir()
    iio.imwrite(root / "labels" / "rgb_1.png", np.ones((H, W), np.uint8))
    scene = read_scene(root)
    assert [c.split for c in scene.cameras] == ["test", "train", "test", "train"]
    assert scene.camera("rgb_1").label_path == root / "labels" / "rgb_1.png"


@pytest.mark.parametrize("case, message", [
    ("short_line", r"traj_w_c\.txt: line 3 has 15 numbers, expected 16"),
    ("text", r"traj_w_c\.txt: line 2 is not numeric"),
    ("few_poses", r"rgb_3\.png: frame 3 has no pose \(traj_w_c\.txt has 3 lines\)"),
    ("nan", r"traj_w_c\.txt: line 2 \(frame rgb_1\.png\): pose contains NaN or inf"),
    ("no_frames", r"rgb: no rgb_N\.png frames found"),
])
def test_replica_bad_input(tmp_path, case, message):
    root = replica_scene(tmp_path, n=4)
    traj = root / "traj_w_c.txt"
    lines = traj.read_text().splitlines()
    if case == "short_line":
        lines[2] = " ".join(lines[2].split()[:15])
    elif case == "text":
        lines[1] = lines[1].replace("-5.0", "abc")
    elif case == "few_poses":
        lines = lines[:3]
    elif case == "nan":
        lines[1] = lines[1].replace("-5.0", "nan")
    elif case == "no_frames":
        for p in (root / "rgb").iterdir():
            p.unlink()
    traj.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=message):
        read_scene(root)


# ------------------------------------------------------------------ ScanNet
DEPTH_W, DEPTH_H = 5, 4  # not an integer factor of the colour size, as in ScanNet
K_COLOR = [[7.5, 0, 4.1, 0], [0, 7.0, 2.9, 0], [0, 0, 1, 0], [0, 0, 0, 1]]


def scannet_scene(root, n=11, invalid=(3,)):
    for d in ("color", "depth", "pose", "intrinsic", "label-filt"):
        (root / d).mkdir(parents=True)
    (root / "intrinsic" / "intrinsic_color.txt").write_text(
        "\n".join(" ".join(map(str, r)) for r in K_COLOR) + "\n")
    depth = (np.arange(DEPTH_W * DEPTH_H, dtype=np.uint16).reshape(DEPTH_H, DEPTH_W) + 1) * 100
    for i in range(n):
        iio.imwrite(root / "color" / f"{i}.jpg", np.full((H, W, 3), 128, np.uint8))
        iio.imwrite(root / "depth" / f"{i}.png", depth)
        iio.imwrite(root / "label-filt" / f"{i}.png", np.full((H, W), 40 + i, np.uint16))
        pose = np.full((4, 4), -np.inf) if i in invalid else c2w_at(float(i))
        (root / "pose" / f"{i}.txt").write_text("\n".join(" ".join(map(str, r)) for r in pose) + "\n")
    return root, depth


def test_scannet(tmp_path, caplog):
    root, depth = scannet_scene(tmp_path)
    assert detect_format(root) == "scannet"
    with caplog.at_level(logging.WARNING):
        scene = read_scene(root)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 1 of 11 frames" in warnings[0].getMessage()
    assert scene.format == "scannet"
    assert [c.name for c in scene.cameras] == ["0", "1", "2", "4", "5", "6", "7", "8", "9", "10"]
    assert [c.name for c in scene.test_cameras] == ["0", "9"]  # every 8th valid frame
    cam = scene.camera("10")
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height) == (7.5, 7.0, 4.1, 2.9, W, H)
    np.testing.assert_allclose(project(cam, [11, 0, 0.5]), [4.1 + 7.5 / 5, 2.9 - 7.0 * 0.5 / 5])
    np.testing.assert_array_equal(scene.load_gt(cam), np.full((H, W), 50))
    d = scene.load_depth(cam)
    assert d.shape == (H, W)
    # Nearest sampling of pixel centres: 8 colour columns over 5 depth columns, 6 rows over 4.
    cols = [0, 0, 1, 2, 2, 3, 4, 4]
    rows = [0, 1, 1, 2, 3, 3]
    np.testing.assert_allclose(d, depth[np.ix_(rows, cols)] * 0.001, rtol=1e-6)
    half = read_scene(root, downscale=2)
    c = half.camera("10")
    assert half.load_depth(c).shape == (3, 4) and half.load_image(c).shape == (3, 4, 3)


def test_scannet_prefers_npy_depth(tmp_path):
    root, _ = scannet_scene(tmp_path, n=2, invalid=())
    np.save(root / "depth" / "1.npy", np.full((H, W), 4.0, np.float32))
    scene = read_scene(root)
    np.testing.assert_array_equal(scene.load_depth(scene.camera("1")), np.full((H, W), 4.0))


@pytest.mark.parametrize("case, message", [
    ("no_intrinsic", r"intrinsic_color\.txt: file not found"),
    ("bad_intrinsic", r"intrinsic_color\.txt: expected a 4x4 intrinsic matrix"),
    ("missing_pose", r"pose/1\.txt: file not found"),
    ("bad_pose", r"pose/1\.txt: unreadable matrix"),
    ("all_invalid", r"the scene has no views"),
    ("corrupt_image", r"color/0\.jpg: unreadable image"),
])
def test_scannet_bad_input(tmp_path, case, message):
    root, _ = scannet_scene(tmp_path, n=2, invalid=())
    if case == "no_intrinsic":
        (root / "intrinsic" / "intrinsic_color.txt").unlink()
    elif case == "bad_intrinsic":
        (root / "intrinsic" / "intrinsic_color.txt").write_text("1 2 3\n")
    elif case == "missing_pose":
        (root / "pose" / "1.txt").unlink()
    elif case == "bad_pose":
        (root / "pose" / "1.txt").write_text("1 0 0 x\n")
    elif case == "all_invalid":
        for i in range(2):
            (root / "pose" / f"{i}.txt").write_text("nan nan nan nan\n" * 4)
    elif case == "corrupt_image":
        (root / "color" / "0.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(InputError, match=message):
        read_scene(root)


def test_scannet_zero_padded_names(tmp_path):
    root, _ = scannet_scene(tmp_path, n=3, invalid=())
    for d, ext in (("color", "jpg"), ("pose", "txt"), ("label-filt", "png")):
        for i in range(3):
            (root / d / f"{i}.{ext}").rename(root / d / f"{i:06d}.{ext}")
    (root / "labels").mkdir()
    iio.imwrite(root / "labels" / "000002.png", np.ones((H, W), np.uint8))
    scene = read_scene(root)
    assert [c.name for c in scene.cameras] == ["000000", "000001", "000002"]
    assert scene.camera("000002").label_path is not None
    assert scene.camera("000001").gt_path == root / "label-filt" / "000001.png"
    assert scene.camera("000001").depth_path is None  # depth/1.png no longer matches
