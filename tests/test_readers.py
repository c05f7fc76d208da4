"""Scene reading: NeRF/Blender reader, shared optional files, splits, detection, bad input."""

import json
import logging
import math

import imageio.v3 as iio
import numpy as np
import pytest

from coseg.errors import InputError
from coseg.io.ply import write_point_cloud
from coseg.plugins import registry
from coseg.readers import detect_format, read_scene
from coseg.scene_settings import ReadSettings

W, H = 8, 6
ANGLE_X = 2 * math.atan(0.5)  # fx = 0.5 * 8 / tan(angle / 2) = 8
# Camera at (0, -5, 0) looking at the origin along +y, world up +z: image right
# is +x, image down is -z. OpenGL camera-to-world (camera y up, looks along -z):
C2W_GL_A = [[1, 0, 0, 0], [0, 0, -1, -5], [0, 1, 0, 0], [0, 0, 0, 1]]
# Camera at (5, 0, 0) looking at the origin along -x: image right is +y, down is -z.
C2W_GL_B = [[0, 0, 1, 5], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]


def project(cam, point):
    """Pixel coordinates (u, v) of a world point through the reader's camera."""
    p = cam.world_to_camera @ np.append(point, 1.0)
    uvw = cam.K @ p[:3]
    return uvw[:2] / uvw[2]


def write_rgb(path, w=W, h=H, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.full((h, w, 3), value, np.uint8))


def write_transforms(path, frames, **meta):
    path.write_text(json.dumps({**meta, "frames": frames}))


def blender_scene(root, n_test=1):
    """A tiny Blender-style scene: train/r_0..1, test/r_0.., extension-less file paths."""
    for i in range(2):
        write_rgb(root / "train" / f"r_{i}.png")
    for i in range(n_test):
        write_rgb(root / "test" / f"r_{i}.png")
    write_transforms(root / "transforms_train.json",
                     [{"file_path": "./train/r_0", "transform_matrix": C2W_GL_A},
                      {"file_path": "./train/r_1", "transform_matrix": C2W_GL_B}],
                     camera_angle_x=ANGLE_X)
    write_transforms(root / "transforms_test.json",
                     [{"file_path": f"./test/r_{i}", "transform_matrix": C2W_GL_A} for i in range(n_test)],
                     camera_angle_x=ANGLE_X)
    return root


def test_blender_conversion_and_projection(tmp_path):
    scene = read_scene(blender_scene(tmp_path))
    assert scene.format == "nerf"
    assert [c.split for c in scene.cameras] == ["train", "train", "test"]
    # train/r_0 and test/r_0 share a stem: views are named by their path instead.
    assert [c.name for c in scene.cameras] == ["train/r_0", "train/r_1", "test/r_0"]
    a, b = scene.cameras[:2]
    assert (a.width, a.height) == (W, H)
    assert a.fx == pytest.approx(8.0) and a.fy == pytest.approx(8.0)
    assert (a.cx, a.cy) == (4.0, 3.0)
    np.testing.assert_allclose(a.center, [0, -5, 0], atol=1e-12)
    np.testing.assert_allclose(project(a, [0, 0, 0]), [4, 3])
    # 1 to the right (+x) and 0.5 up (+z) at depth 5: u = 4 + 8/5, v = 3 - 8*0.5/5.
    np.testing.assert_allclose(project(a, [1, 0, 0.5]), [5.6, 2.2])
    np.testing.assert_allclose(project(b, [0, 1, 0.5]), [5.6, 2.2])
    img = scene.load_image(a)
    assert img.shape == (H, W, 3) and img.dtype == np.float32
    assert img[0, 0, 0] == pytest.approx(100 / 255)


def test_instant_ngp_intrinsics_and_single_file_split(tmp_path):
    frames = []
    for i in range(10):
        write_rgb(tmp_path / "images" / f"im{i:02d}.jpg")
        frames.append({"file_path": f"images/im{i:02d}.jpg", "transform_matrix": C2W_GL_A})
    frames[3].update(fl_x=20.0, fl_y=21.0, cx=4.5, cy=2.5)
    write_transforms(tmp_path / "transforms.json", frames, fl_x=10.0, fl_y=11.0, cx=3.9, cy=3.1, w=W, h=H)
    scene = read_scene(tmp_path)
    c0, c3 = scene.camera("im00"), scene.camera("im03")
    assert (c0.fx, c0.fy, c0.cx, c0.cy) == (10.0, 11.0, 3.9, 3.1)
    assert (c3.fx, c3.fy, c3.cx, c3.cy) == (20.0, 21.0, 4.5, 2.5)
    assert [c.name for c in scene.test_cameras] == ["im00", "im08"]
    assert len(scene.train_cameras) == 8


def test_camera_angle_y_gives_fy(tmp_path):
    write_rgb(tmp_path / "a.png")
    angle_y = 2 * math.atan(0.25)  # fy = 0.5 * 6 / 0.25 = 12
    write_transforms(tmp_path / "transforms_train.json",
                     [{"file_path": "a", "transform_matrix": C2W_GL_A}],
                     camera_angle_x=ANGLE_X, camera_angle_y=angle_y)
    cam = read_scene(tmp_path).cameras[0]
    assert cam.fx == pytest.approx(8.0) and cam.fy == pytest.approx(12.0)


def test_optional_files_are_picked_up(tmp_path):
    root = tmp_path
    write_rgb(root / "images" / "v0.png")
    write_rgb(root / "images" / "v1.png")
    write_transforms(root / "transforms_train.json",
                     [{"file_path": "images/v0", "transform_matrix": C2W_GL_A},
                      {"file_path": "images/v1", "transform_matrix": C2W_GL_B}], camera_angle_x=ANGLE_X)
    (root / "labels").mkdir()
    (root / "gt").mkdir()
    (root / "depth").mkdir()
    labels = np.arange(W * H, dtype=np.uint8).reshape(H, W) % 3
    iio.imwrite(root / "labels" / "v0.png", labels)
    iio.imwrite(root / "gt" / "v0.png", labels[::-1].copy())
    np.save(root / "depth" / "v1.npy", np.full((H, W), 2.5, np.float32))
    (root / "classes.json").write_text(json.dumps({"0": "floor", "1": "wall", "2": "chair"}))
    xyz = np.array([[0, 0, 0], [1, 2, 3]], np.float32)
    write_point_cloud(root / "points3d.ply", xyz, np.array([[1, 0, 0], [0, 1, 0]], np.float32))
    scene = read_scene(root)
    v0, v1 = scene.camera("v0"), scene.camera("v1")
    assert scene.classes == {0: "floor", 1: "wall", 2: "chair"}
    np.testing.assert_array_equal(scene.load_labels(v0), labels)
    np.testing.assert_array_equal(scene.load_gt(v0), labels[::-1])
    assert scene.load_labels(v1) is None and v1.label_path is None
    assert scene.load_depth(v0) is None
    np.testing.assert_array_equal(scene.load_depth(v1), np.full((H, W), 2.5, np.float32))
    np.testing.assert_array_equal(scene.points_xyz, xyz)
    np.testing.assert_allclose(scene.points_rgb, [[1, 0, 0], [0, 1, 0]])
    assert scene.has_labels and scene.has_gt


def test_downscale(tmp_path):
    root = tmp_path
    write_rgb(root / "v0.png")
    write_transforms(root / "transforms_train.json",
                     [{"file_path": "v0.png", "transform_matrix": C2W_GL_A}], camera_angle_x=ANGLE_X)
    (root / "labels").mkdir()
    iio.imwrite(root / "labels" / "v0.png", np.tile(np.arange(W, dtype=np.uint8), (H, 1)))
    full = read_scene(root).cameras[0]
    scene = read_scene(root, downscale=2)
    cam = scene.cameras[0]
    assert scene.downscale == 2
    assert (cam.width, cam.height, cam.cx, cam.cy) == (4, 3, 2.0, 1.5)
    assert cam.fx == pytest.approx(4.0)
    # The same world point lands on the same continuous position, halved.
    np.testing.assert_allclose(project(cam, [1, 0, 0.5]), project(full, [1, 0, 0.5]) / 2)
    assert scene.load_image(cam).shape == (3, 4, 3)
    # nearest sampling: the source pixel holding each target pixel's centre
    np.testing.assert_array_equal(scene.load_labels(cam)[0], [1, 3, 5, 7])
    # Any factor >= 1: 8x6 by 1.5 is 5x4, intrinsics scaled per axis (5/8, 4/6).
    odd = read_scene(root, downscale=1.5).cameras[0]
    assert (odd.width, odd.height) == (5, 4)
    np.testing.assert_allclose(project(odd, [1, 0, 0.5]), project(full, [1, 0, 0.5]) * [5 / 8, 4 / 6])
    assert read_scene(root, downscale=1.5).load_image(odd).shape == (4, 5, 3)
    for bad in (0, 0.5, "2", float("nan")):
        with pytest.raises(InputError, match=r"scene reading setting downscale=.*: must be"):
            read_scene(root, downscale=bad)


def test_label_maps_of_wrong_size_or_out_of_range_ids(tmp_path):
    root = blender_scene(tmp_path)
    (root / "labels" / "train").mkdir(parents=True)
    iio.imwrite(root / "labels" / "train" / "r_0.png", np.zeros((5, 7), np.uint8))
    iio.imwrite(root / "labels" / "train" / "r_1.png", np.full((H, W), 9, np.uint8))
    (root / "classes.json").write_text(json.dumps(["a", "b", "c"]))
    scene = read_scene(root)
    with pytest.raises(InputError, match=r"r_0\.png: size 7x5 does not match the camera's 8x6"):
        scene.load_labels(scene.camera("train/r_0"))
    with pytest.raises(InputError, match=r"r_1\.png: label id 9 is out of range"):
        scene.load_labels(scene.camera("train/r_1"))


def test_split_files_override(tmp_path):
    root = blender_scene(tmp_path, n_test=2)
    (root / "test.txt").write_text("# held out\ntrain/r_1\n\n")
    scene = read_scene(root)
    assert [c.name for c in scene.test_cameras] == ["train/r_1"]
    assert len(scene.train_cameras) == 3
    (root / "train.txt").write_text("train/r_0.png\n")
    scene = read_scene(root)
    assert [c.split for c in scene.cameras] == ["train", "test", "val", "val"]
    (root / "test.txt").write_text("train/r_0\n")
    with pytest.raises(InputError, match="listed in both train.txt and test.txt"):
        read_scene(root)
    (root / "test.txt").write_text("nosuchview\n")
    with pytest.raises(InputError, match=r"test\.txt:1: no view named 'nosuchview'"):
        read_scene(root)


@pytest.mark.parametrize("case, message", [
    ("missing_image", r"1 of 3 listed images are missing: train/r_1 \(use missing_images=skip"),
    ("bad_json", r"transforms_train\.json: malformed JSON"),
    ("nan_pose", r"transforms_train\.json: frame 0 \(\./train/r_0\): pose contains NaN or inf"),
    ("no_frames", r"transforms_train\.json: expected an object with a \"frames\" list"),
    ("no_intrinsics", r"frame 0 \(\./train/r_0\): no intrinsics"),
    ("camera_model", r"frame 0 \(\./train/r_0\): camera_model EQUIRECTANGULAR is not supported"),
    ("k4_perspective", r"k4 is only used by camera_model OPENCV_FISHEYE"),
    ("bad_matrix", r"frame 0 \(\./train/r_0\): pose must be a 4x4 matrix"),
    ("corrupt_image", r"r_0\.png: unreadable image"),
])
def test_nerf_bad_input(tmp_path, case, message):
    root = blender_scene(tmp_path)
    train = root / "transforms_train.json"
    meta = json.loads(train.read_text())
    if case == "missing_image":
        (root / "train" / "r_1.png").unlink()
    elif case == "bad_json":
        train.write_text(train.read_text()[:-5])
    elif case == "nan_pose":
        meta["frames"][0]["transform_matrix"][0][3] = float("nan")
        train.write_text(json.dumps(meta))
    elif case == "no_frames":
        train.write_text("[]")
    elif case == "no_intrinsics":
        del meta["camera_angle_x"]
        train.write_text(json.dumps(meta))
    elif case == "camera_model":
        meta.update(camera_model="EQUIRECTANGULAR")
        train.write_text(json.dumps(meta))
    elif case == "k4_perspective":
        meta.update(k4=0.01)
        train.write_text(json.dumps(meta))
    elif case == "bad_matrix":
        meta["frames"][0]["transform_matrix"] = [[1, 2], [3, 4]]
        train.write_text(json.dumps(meta))
    elif case == "corrupt_image":
        (root / "train" / "r_0.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=message):
        read_scene(root, settings=ReadSettings(missing_images="error"))


def test_missing_images_are_skipped_with_one_line(tmp_path, caplog):
    # an Instant-NGP capture listing more frames than it has photos (the fox: 67 for 50)
    frames = [{"file_path": f"images/{i:04d}.jpg", "transform_matrix": C2W_GL_A} for i in range(12)]
    (tmp_path / "images").mkdir()
    for i in range(12):
        if i % 3:
            write_rgb(tmp_path / "images" / f"{i:04d}.png")  # a file under another name does not count
        else:
            iio.imwrite(tmp_path / "images" / f"{i:04d}.jpg", np.full((H, W, 3), 90, np.uint8))
    write_transforms(tmp_path / "transforms.json", frames, fl_x=8.0, w=W, h=H)
    with caplog.at_level(logging.WARNING):
        scene = read_scene(tmp_path)
    assert [c.name for c in scene.cameras] == ["0000", "0003", "0006", "0009"]
    lines = [r.getMessage() for r in caplog.records if "missing" in r.getMessage()]
    assert len(lines) == 1 and "8 of 12 listed images are missing, their views are skipped" in lines[0]
    assert "images/0001.jpg, images/0002.jpg" in lines[0] and "... and 0 more" not in lines[0]
    assert [p.name for p in scene.missing_images][:2] == ["0001.jpg", "0002.jpg"]
    assert scene.test_cameras and scene.train_cameras  # every 8th by name among the views that remain
    with pytest.raises(InputError, match=r"8 of 12 listed images are missing: images/0001\.jpg"):
        read_scene(tmp_path, settings=ReadSettings(missing_images="error"))
    for i in (0, 3, 6, 9):
        (tmp_path / "images" / f"{i:04d}.jpg").unlink()
    with pytest.raises(InputError, match="none of the 12 images the scene lists exist"):
        read_scene(tmp_path)


def test_unrecognised_folder_lists_layouts(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError) as e:
        read_scene(tmp_path)
    msg = str(e.value)
    assert "not a scene folder" in msg
    for layout in ("transforms_train.json", "sparse/0", "traj_w_c.txt", "intrinsic_color.txt"):
        assert layout in msg
    with pytest.raises(InputError, match="scene folder not found"):
        read_scene(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(InputError, match="expected a scene folder"):
        read_scene(tmp_path / "file.txt")


def test_registry_detection_and_format_override(tmp_path):
    assert {"nerf", "colmap", "replica", "scannet"} <= set(registry().names("scene_reader"))
    root = blender_scene(tmp_path)
    assert detect_format(root) == "nerf"
    with pytest.raises(InputError, match="no scene_reader plugin named 'bogus'"):
        read_scene(root, format="bogus")
    # Forcing a reader that does not match gives that reader's own clear error.
    with pytest.raises(InputError, match="no COLMAP model"):
        read_scene(root, format="colmap")


def test_third_party_reader_through_registry(tmp_path, monkeypatch, caplog):
    import coseg.plugins as plugins_mod
    from coseg.plugins import PluginRegistry
    from coseg.scene import Camera, Scene

    class Marker:
        name, layout = "marker", "Marker (scene.marker)"

        def detect(self, path):
            return (path / "scene.marker").is_file()

        def read(self, path):
            cam = Camera("a", path / "a.png", W, H, 8.0, 8.0, 4.0, 3.0, np.eye(4))
            return Scene(root=path, format=self.name, cameras=[cam])

    class Broken:
        name = "broken"

        def detect(self, path):
            raise RuntimeError("boom")

        def read(self, path):
            return "not a scene"

    reg = PluginRegistry()
    reg.add("scene_reader", "broken", Broken())
    reg.add("scene_reader", "marker", Marker())
    monkeypatch.setattr(plugins_mod, "_registry", reg)
    (tmp_path / "scene.marker").write_text("")
    with caplog.at_level(logging.WARNING):
        scene = read_scene(tmp_path, downscale=2)
    assert scene.format == "marker" and scene.cameras[0].width == 4
    assert "boom" in caplog.text  # the broken detect is reported and skipped
    with pytest.raises(InputError, match="scene reader 'broken' returned str, not a Scene"):
        read_scene(tmp_path, format="broken")
    (tmp_path / "scene.marker").unlink()
    with pytest.raises(InputError, match=r"looked for: broken; Marker \(scene\.marker\)"):
        read_scene(tmp_path)


def test_folder_matching_two_layouts(tmp_path):
    root = blender_scene(tmp_path)
    (root / "sparse" / "0").mkdir(parents=True)
    (root / "sparse" / "0" / "cameras.txt").write_text("")
    assert detect_format(root) == "colmap"  # first in registry order
    assert read_scene(root, format="nerf").format == "nerf"
