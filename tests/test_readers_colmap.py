"""COLMAP scene reader: text and binary models, camera models, splits, bad input."""

import struct

import imageio.v3 as iio
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from coseg.errors import InputError
from coseg.readers import detect_format, read_scene
from coseg.scene_settings import ReadSettings

W, H = 8, 6
MODEL_IDS = {"SIMPLE_PINHOLE": 0, "PINHOLE": 1, "OPENCV": 4, "FOV": 7}
# OpenCV camera-to-world: A at (0, -5, 0) looking along +y (image right +x, down -z);
# B at (5, 0, 0) looking along -x (image right +y, down -z).
C2W_A = np.array([[1, 0, 0, 0], [0, 0, 1, -5], [0, -1, 0, 0], [0, 0, 0, 1]], float)
C2W_B = np.array([[0, 0, -1, 5], [1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], float)
CAMERAS = [(1, "PINHOLE", [8.0, 9.0, 4.0, 3.0]), (2, "SIMPLE_PINHOLE", [8.0, 4.25, 2.75])]
POINTS = [(1, [0.0, 0.0, 0.0], [255, 0, 0]), (7, [1.0, 2.0, 3.0], [0, 128, 255])]


def images_spec(n=9):
    """(image id, qvec wxyz, tvec, camera id, name) in an unsorted order."""
    out = []
    for i in reversed(range(n)):
        w2c = np.linalg.inv(C2W_A if i % 2 == 0 else C2W_B)
        x, y, z, w = Rotation.from_matrix(w2c[:3, :3]).as_quat()
        out.append((i + 1, [w, x, y, z], list(w2c[:3, 3]), 1 if i % 2 == 0 else 2, f"img_{i}.png"))
    return out


def write_images_dir(root, n=9):
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        iio.imwrite(root / "images" / f"img_{i}.png", np.full((H, W, 3), 10 * i, np.uint8))


def write_text_model(d, cameras=CAMERAS, images=None, points=POINTS):
    d.mkdir(parents=True, exist_ok=True)
    lines = ["# Camera list with one line of data per camera:"]
    lines += [f"{cid} {model} {W} {H} " + " ".join(map(str, p)) for cid, model, p in cameras]
    (d / "cameras.txt").write_text("\n".join(lines) + "\n")
    lines = ["# Image list with two lines of data per image:"]
    for k, (iid, q, t, cid, name) in enumerate(images or images_spec()):
        lines.append(" ".join(map(str, [iid, *q, *t, cid, name])))
        lines.append("" if k % 2 else "1.5 2.5 1 3.0 4.0 -1")
    (d / "images.txt").write_text("\n".join(lines) + "\n")
    lines = [f"{pid} {' '.join(map(str, xyz))} {' '.join(map(str, rgb))} 0.5 1 0 2 1"
             for pid, xyz, rgb in points]
    (d / "points3D.txt").write_text("# 3D point list\n" + "\n".join(lines) + "\n")


def write_binary_model(d, cameras=CAMERAS, images=None, points=POINTS):
    d.mkdir(parents=True, exist_ok=True)
    b = struct.pack("<Q", len(cameras))
    for cid, model, p in cameras:
        b += struct.pack(f"<iiQQ{len(p)}d", cid, MODEL_IDS[model], W, H, *p)
    (d / "cameras.bin").write_bytes(b)
    images = images or images_spec()
    b = struct.pack("<Q", len(images))
    for k, (iid, q, t, cid, name) in enumerate(images):
        b += struct.pack("<i7di", iid, *q, *t, cid) + name.encode() + b"\0"
        n2d = k % 3
        b += struct.pack("<Q", n2d) + b"".join(struct.pack("<ddq", 1.0, 2.0, -1) for _ in range(n2d))
    (d / "images.bin").write_bytes(b)
    b = struct.pack("<Q", len(points))
    for pid, xyz, rgb in points:
        b += struct.pack("<Q3d3BdQ", pid, *xyz, *rgb, 0.5, 2) + struct.pack("<iiii", 1, 0, 2, 1)
    (d / "points3D.bin").write_bytes(b)


def project(cam, point):
    p = cam.world_to_camera @ np.append(point, 1.0)
    uvw = cam.K @ p[:3]
    return uvw[:2] / uvw[2]


@pytest.mark.parametrize("writer", [write_text_model, write_binary_model])
def test_colmap_model(tmp_path, writer):
    write_images_dir(tmp_path)
    writer(tmp_path / "sparse" / "0")
    assert detect_format(tmp_path) == "colmap"
    scene = read_scene(tmp_path)
    assert scene.format == "colmap"
    assert [c.name for c in scene.cameras] == [f"img_{i}" for i in range(9)]
    assert [c.name for c in scene.test_cameras] == ["img_0", "img_8"]
    a, b = scene.camera("img_0"), scene.camera("img_1")
    assert (a.fx, a.fy, a.cx, a.cy, a.width, a.height) == (8.0, 9.0, 4.0, 3.0, W, H)
    assert (b.fx, b.fy, b.cx, b.cy) == (8.0, 8.0, 4.25, 2.75)
    np.testing.assert_allclose(a.center, [0, -5, 0], atol=1e-12)
    # 1 right (+x) and 0.5 up (+z) at depth 5 from camera A.
    np.testing.assert_allclose(project(a, [1, 0, 0.5]), [4 + 8 / 5, 3 - 9 * 0.5 / 5])
    np.testing.assert_allclose(project(b, [0, 1, 0.5]), [4.25 + 8 / 5, 2.75 - 8 * 0.5 / 5])
    np.testing.assert_allclose(scene.points_xyz, [[0, 0, 0], [1, 2, 3]])
    np.testing.assert_allclose(scene.points_rgb, [[1, 0, 0], [0, 128 / 255, 1]], rtol=1e-6)
    assert scene.load_image(scene.camera("img_3"))[0, 0, 0] == pytest.approx(30 / 255)


def test_text_and_binary_agree_and_binary_wins(tmp_path):
    write_text_model(tmp_path / "t" / "sparse" / "0")
    write_binary_model(tmp_path / "b" / "sparse" / "0")
    for d in ("t", "b"):
        write_images_dir(tmp_path / d)
    st, sb = read_scene(tmp_path / "t"), read_scene(tmp_path / "b")
    for ct, cb in zip(st.cameras, sb.cameras):
        assert (ct.name, ct.fx, ct.fy, ct.cx, ct.cy) == (cb.name, cb.fx, cb.fy, cb.cx, cb.cy)
        np.testing.assert_allclose(ct.world_to_camera, cb.world_to_camera, atol=1e-12)
    # With both forms present the binary files are read (a broken .txt is ignored).
    (tmp_path / "b" / "sparse" / "0" / "cameras.txt").write_text("garbage")
    assert len(read_scene(tmp_path / "b").cameras) == 9


def test_sparse_without_subfolder_and_no_points(tmp_path):
    write_images_dir(tmp_path, 2)
    write_text_model(tmp_path / "sparse", images=images_spec(2))
    (tmp_path / "sparse" / "points3D.txt").unlink()
    scene = read_scene(tmp_path)
    assert len(scene.cameras) == 2 and scene.points_xyz is None


@pytest.mark.parametrize("writer, file", [(write_text_model, "cameras.txt"), (write_binary_model, "cameras.bin")])
def test_unsupported_camera_model(tmp_path, writer, file):
    write_images_dir(tmp_path)
    cams = [CAMERAS[0], (2, "FOV", [8.0, 8.0, 4.0, 3.0, 0.1])]
    writer(tmp_path / "sparse" / "0", cameras=cams)
    with pytest.raises(InputError, match=rf"{file}: camera 2 uses the FOV model, which is not supported "
                                         r"\(supported: SIMPLE_PINHOLE, .*\); undistort the images"):
        read_scene(tmp_path)


@pytest.mark.parametrize("file, cut", [("cameras.bin", 10), ("images.bin", 30), ("images.bin", -3),
                                       ("points3D.bin", -5), ("points3D.bin", 12)])
def test_truncated_binary(tmp_path, file, cut):
    write_images_dir(tmp_path)
    d = tmp_path / "sparse" / "0"
    write_binary_model(d)
    data = (d / file).read_bytes()
    (d / file).write_bytes(data[:cut])
    with pytest.raises(InputError, match=rf"{file}: file is truncated"):
        read_scene(tmp_path)


def test_colmap_bad_input(tmp_path):
    d = tmp_path / "sparse" / "0"
    write_text_model(d)
    with pytest.raises(InputError, match="images: image folder not found"):
        read_scene(tmp_path)
    write_images_dir(tmp_path)
    (tmp_path / "images" / "img_4.png").unlink()
    with pytest.raises(InputError, match=r"1 of 9 listed images are missing: images/img_4\.png"):
        read_scene(tmp_path, settings=ReadSettings(missing_images="error"))
    assert len(read_scene(tmp_path).cameras) == 8  # skipped by default
    write_images_dir(tmp_path)
    write_text_model(d, cameras=CAMERAS[:1])
    with pytest.raises(InputError, match=r"images\.txt: image 'img_\d\.png' refers to camera 2"):
        read_scene(tmp_path)
    write_text_model(d)
    (d / "images.txt").write_text("1 0 0 0 1 x 0 0 1 img_0.png\n\n")
    with pytest.raises(InputError, match=r"images\.txt:1: malformed line"):
        read_scene(tmp_path)
    (d / "images.txt").write_text(f"1 {float('nan')} 0 0 1 0 0 0 1 img_0.png\n\n")
    with pytest.raises(InputError, match=r"image img_0\.png: pose contains NaN"):
        read_scene(tmp_path)


def test_colmap_split_file(tmp_path):
    write_images_dir(tmp_path)
    write_text_model(tmp_path / "sparse" / "0")
    (tmp_path / "test.txt").write_text("img_3.png\nimg_5\n")
    scene = read_scene(tmp_path)
    assert [c.name for c in scene.test_cameras] == ["img_3", "img_5"]
    assert len(scene.train_cameras) == 7
