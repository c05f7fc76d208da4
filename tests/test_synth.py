"""The demo scene generator: layout, files, determinism, camera consistency, label noise, CLI."""

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import open3d as o3d
import pytest

from coseg.errors import InputError
from coseg.synth import LabelNoiseConfig, SynthConfig, generate, parse_size
from coseg.synth.labels import (STUFF, LabelConsistency, confusion_ids, instance_error_rates, noise_preset,
                                simulate_labels)
from coseg.synth.layout import build_layout

TINY = dict(views=6, test_views=3, width=40, height=30, points=300)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "scene"
    return out, generate(out, SynthConfig(seed=3, **TINY))


# ------------------------------------------------------------------ layout
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_room_has_many_classes_with_several_instances(seed):
    layout = build_layout("room", np.random.default_rng([seed, 0]))
    counts = np.bincount(layout.instance_class, minlength=len(layout.classes))
    present = {layout.classes[k]: int(c) for k, c in enumerate(counts) if c}
    assert len(present) >= 8
    objects = {k: c for k, c in present.items() if k not in ("floor", "ceiling")}
    assert all(c >= 2 for c in objects.values()), present
    # Everything stays inside the room (walls, floor and ceiling excepted).
    lo, hi = layout.bounds
    inner = ~np.isin(layout.instance_class, [layout.class_of(n) for n in STUFF if n in layout.classes.values()])
    boxes = layout.instance_boxes[inner]
    assert (boxes[:, 0] >= lo - 1e-6).all() and (boxes[:, 1] <= hi + 1e-6).all()


def test_room_floor_items_do_not_overlap():
    layout = build_layout("room", np.random.default_rng([0, 0]))
    wall_items = [layout.class_of(n) for n in ("bed", "sofa", "cabinet", "box")]
    boxes = layout.instance_boxes[np.isin(layout.instance_class, wall_items)]
    standing = boxes[boxes[:, 0, 2] < 0.05]  # on the floor (not a box on a cabinet)
    for a in range(len(standing)):
        for b in range(a + 1, len(standing)):
            gap = np.maximum(standing[a, 0, :2] - standing[b, 1, :2], standing[b, 0, :2] - standing[a, 1, :2])
            assert gap.max() > 0.0, (a, b)


def test_object_layout_has_background_class():
    layout = build_layout("object", np.random.default_rng([0, 0]))
    assert layout.classes[0] == "background" and layout.background_class == 0
    assert len(set(layout.instance_class.tolist())) >= 5


# ------------------------------------------------------------------- files
def test_files_follow_the_nerf_layout(tiny):
    out, summary = tiny
    train = json.loads((out / "transforms_train.json").read_text())
    test = json.loads((out / "transforms_test.json").read_text())
    assert len(train["frames"]) == 6 and len(test["frames"]) == 3
    for meta in (train, test):
        assert (meta["w"], meta["h"], meta["cx"], meta["cy"]) == (40, 30, 20.0, 15.0)
        assert meta["fl_x"] == pytest.approx(20.0 / np.tan(np.radians(35.0)))
        assert meta["camera_angle_x"] == pytest.approx(np.radians(70.0))
    stems = [f["file_path"] for f in train["frames"] + test["frames"]]
    assert len(set(stems)) == 9 and all(s.startswith("images/r_") and "." not in s for s in stems)
    classes = json.loads((out / "classes.json").read_text())
    assert classes["0"] == "floor" and len(classes) == 15
    for s in (Path(s).name for s in stems):
        rgb, gt, lab = (iio.imread(out / d / f"{s}.png") for d in ("images", "gt", "labels"))
        depth = np.load(out / "depth" / f"{s}.npy")
        assert rgb.shape == (30, 40, 3) and rgb.dtype == np.uint8
        assert gt.shape == lab.shape == (30, 40) and gt.dtype == lab.dtype == np.uint8
        assert depth.shape == (30, 40) and depth.dtype == np.float32 and (depth > 0).all()
        assert gt.max() < len(classes) and lab.max() < len(classes)
    from coseg.io.ply import read_point_cloud

    xyz, rgb = read_point_cloud(out / "points3d.ply")
    assert xyz.shape == (300, 3) and rgb is not None and 0.0 <= rgb.min() and rgb.max() <= 1.0
    assert summary["views"] == {"train": 6, "test": 3} and summary["points"] == 300
    assert 0.0 < summary["raw_label_miou_test"] <= 1.0
    assert not list(out.parent.glob(".*partial"))


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    out, _ = tiny
    again = tmp_path / "again"
    generate(again, SynthConfig(seed=3, **TINY))
    first, second = _files(out), _files(again)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
    other = tmp_path / "other"
    generate(other, SynthConfig(seed=4, **TINY))
    third = _files(other)
    assert third["images/r_0000.png"] != first["images/r_0000.png"]
    assert third["transforms_train.json"] != first["transforms_train.json"]


def _w2c_from_nerf(frame: dict) -> np.ndarray:
    """What a NeRF reader does: OpenGL c2w -> OpenCV w2c by flipping camera y and z."""
    return np.linalg.inv(np.asarray(frame["transform_matrix"]) @ np.diag([1.0, -1.0, -1.0, 1.0]))


def test_depth_back_projects_onto_the_mesh(tiny):
    out, _ = tiny
    meta = json.loads((out / "transforms_train.json").read_text())
    layout = build_layout("room", np.random.default_rng([3, 0]))
    scene = o3d.t.geometry.RaycastingScene()
    for p in layout.pieces:
        scene.add_triangles(p.vertices.astype(np.float32), p.triangles.astype(np.uint32))
    j, i = np.mgrid[0:30, 0:40]
    for frame in meta["frames"]:
        depth = np.load(out / "depth" / f"{Path(frame['file_path']).name}.npy")
        cam = np.stack([(i + 0.5 - meta["cx"]) / meta["fl_x"] * depth,
                        (j + 0.5 - meta["cy"]) / meta["fl_y"] * depth, depth], -1).reshape(-1, 3)
        c2w = np.linalg.inv(_w2c_from_nerf(frame))
        world = cam @ c2w[:3, :3].T + c2w[:3, 3]
        dist = scene.compute_distance(o3d.core.Tensor(world.astype(np.float32))).numpy()
        assert np.quantile(dist, 0.99) < 2e-3 and dist.max() < 1e-2
        # ... and the mesh point projects back to the pixel it was rendered at.
        w2c = _w2c_from_nerf(frame)
        p = world @ w2c[:3, :3].T + w2c[:3, 3]
        u = p[:, 0] / p[:, 2] * meta["fl_x"] + meta["cx"]
        np.testing.assert_allclose(u, (i + 0.5).reshape(-1), atol=1e-6)


def test_scene_reader_reads_the_folder(tiny):
    readers = pytest.importorskip("coseg.readers")
    out, _ = tiny
    scene = readers.read_scene(out)
    assert len(scene.train_cameras) == 6 and len(scene.test_cameras) == 3
    assert scene.classes[0] == "floor" and scene.points_xyz.shape == (300, 3)
    meta = json.loads((out / "transforms_train.json").read_text())
    for cam, frame in zip(scene.train_cameras, meta["frames"]):
        np.testing.assert_allclose(cam.world_to_camera, _w2c_from_nerf(frame), atol=1e-9)
        assert (cam.fx, cam.cx, cam.cy) == pytest.approx((meta["fl_x"], 20.0, 15.0))
        assert scene.load_labels(cam).shape == scene.load_gt(cam).shape == (30, 40)
        assert (scene.load_depth(cam) > 0).all()


def test_object_kind_has_black_background(tmp_path):
    summary = generate(tmp_path / "obj", SynthConfig(kind="object", **TINY))
    rgb = iio.imread(tmp_path / "obj" / "images" / "r_0000.png")
    gt = iio.imread(tmp_path / "obj" / "gt" / "r_0000.png")
    depth = np.load(tmp_path / "obj" / "depth" / "r_0000.npy")
    assert (gt == 0).any() and (gt > 0).any()
    assert (rgb[gt == 0] == 0).all() and (depth[gt == 0] == 0).all() and (depth[gt > 0] > 0).all()
    assert summary["classes"][0] == "background"


@pytest.mark.parametrize("sky", ["gradient", "white"])
def test_outdoor_kind_has_an_open_sky_above_the_ground(tmp_path, sky):
    summary = generate(tmp_path / "out", SynthConfig(kind="outdoor", sky=sky, **TINY))
    assert summary["classes"][0] == "sky" and summary["classes"][1] == "ground"
    scene = tmp_path / "out"
    seen_sky = 0
    for stem in ("r_0000", "r_0001", "r_0002"):
        rgb = iio.imread(scene / "images" / f"{stem}.png").astype(np.float64) / 255
        gt = iio.imread(scene / "gt" / f"{stem}.png")
        depth = np.load(scene / "depth" / f"{stem}.npy")
        sky_px = gt == 0
        seen_sky += sky_px.sum()
        assert (depth[sky_px] == 0).all() and (depth[~sky_px] > 0).all()
        if sky_px.any():
            # a bright sky, brighter than anything lit on the ground, above the ground's rows
            assert rgb[sky_px].min() > 0.5
            assert np.mean(np.nonzero(sky_px)[0]) < np.mean(np.nonzero(gt == 1)[0])
            if sky == "white":
                assert (rgb[sky_px] == 1.0).all()
    assert seen_sky > 0.1 * 3 * 40 * 30


# ------------------------------------------------------------- label noise
_CLASSES = {0: "floor", 1: "chair", 2: "sofa", 3: "book", 4: "box", 5: "rug", 6: "table"}


def _toy_view():
    """A 64x48 floor (instance 0) with a chair (instance 1) and a tiny book (instance 2)."""
    inst = np.zeros((48, 64), np.int32)
    inst[10:34, 20:44] = 1
    inst[40:43, 5:8] = 2
    instance_class = np.array([0, 1, 3], np.int32)
    return instance_class[inst].astype(np.uint8), inst, instance_class


def _noisy(cfg, view=0, rates=None, seed=0):
    gt, inst, icls = _toy_view()
    rates = instance_error_rates(3, seed, cfg) if rates is None else np.asarray(rates)
    return gt, inst, simulate_labels(gt, inst, icls, rates, confusion_ids(_CLASSES), {0}, seed, view, cfg)


_QUIET = dict(confusion_mean=0.0, miss_probability=0.0, bleed_probability=0.0, jitter_max_px=0.0,
              blobs_per_view=0.0)


def test_no_noise_reproduces_gt():
    gt, _, raw = _noisy(LabelNoiseConfig(**_QUIET))
    np.testing.assert_array_equal(raw, gt)


def test_small_objects_take_the_surrounding_label():
    gt, inst, raw = _noisy(LabelNoiseConfig(**{**_QUIET, "miss_probability": 1.0, "small_area": 0.01}))
    assert (raw[inst == 2] == 0).all() and (raw[inst == 1] == 1).all()


def test_whole_and_partial_confusions():
    forced = {**_QUIET, "confusion_mean": 1.0, "confusion_max": 1.0, "partial_fraction": 0.0}
    gt, inst, raw = _noisy(LabelNoiseConfig(**forced), rates=[1.0, 1.0, 0.0])
    assert set(np.unique(raw[inst == 1])) <= {2, 6}  # chair -> sofa or table, whole instance
    floor = raw[inst == 0]
    assert (floor == 5).any() and (floor == 0).any()  # stuff is only ever mislabelled in part
    gt, inst, raw = _noisy(LabelNoiseConfig(**{**forced, "partial_fraction": 1.0}), rates=[0.0, 1.0, 0.0])
    chair = raw[inst == 1]
    assert (chair == 1).any() and (chair != 1).any()


def test_confusions_vary_across_views_and_are_deterministic():
    cfg = LabelNoiseConfig()
    majorities = []
    for view in range(30):
        gt, inst, raw = _noisy(cfg, view=view, rates=[0.0, 0.5, 0.0])
        majorities.append(np.bincount(raw[inst == 1]).argmax())
        np.testing.assert_array_equal(raw, _noisy(cfg, view=view, rates=[0.0, 0.5, 0.0])[2])
    wrong = np.mean(np.asarray(majorities) != 1)
    assert 0.2 < wrong < 0.8  # the chair is wrong in some views and right in others


def test_boundary_noise_only_touches_boundaries():
    gt, inst, raw = _noisy(LabelNoiseConfig(**{**_QUIET, "jitter_max_px": 10.0, "bleed_probability": 1.0}),
                           view=1)
    changed = raw != gt
    assert changed.any()
    assert not changed[14:30, 24:40].any()  # the chair's interior, > 4 px from its edge


def test_instance_error_rates_spread_and_cap():
    rates = instance_error_rates(500, 0, noise_preset("per-view"))  # per-view errors at full strength
    assert rates.max() <= 0.6 and (rates < 0.05).mean() > 0.2 and (rates > 0.4).mean() > 0.05


def test_generated_labels_are_inconsistent_across_views(tiny):
    out, summary = tiny
    assert summary["consistency"]["instances_in_2plus_views"] > 5
    assert summary["consistency"]["inconsistent_instances"] > 0.0
    assert 0.0 < summary["consistency"]["wrong_instance_views"] < 0.5
    stems = sorted(p.stem for p in (out / "gt").glob("*.png"))
    differ = np.mean([np.mean(iio.imread(out / "labels" / f"{s}.png") != iio.imread(out / "gt" / f"{s}.png"))
                      for s in stems])
    assert 0.02 < differ < 0.5
    assert summary["raw_label_pixel_accuracy_test"] < 1.0


def test_label_consistency_counts_majorities():
    lc = LabelConsistency(np.array([0, 1]), min_pixels=2)
    inst = np.array([[0, 0, 1, 1]])
    lc.add(inst, np.array([[0, 0, 1, 1]]))
    lc.add(inst, np.array([[0, 0, 4, 4]]))
    s = lc.summary()
    assert s["instances_in_2plus_views"] == 2 and s["inconsistent_instances"] == 0.5
    assert s["wrong_instance_views"] == 0.25


# --------------------------------------------------------------------- CLI
def _cli(args, capsys):
    from coseg.cli import main

    rc = main(["synth", *map(str, args)])
    return rc, capsys.readouterr()


@pytest.mark.parametrize("args, needle", [(["--size", "0x0"], "--size"), (["--size", "big"], "WIDTHxHEIGHT"),
                                          (["--views", "1"], "--views"), (["--test-views", "0"], "--test-views")])
def test_cli_bad_arguments_are_one_clear_error(tmp_path, capsys, args, needle):
    rc, cap = _cli([tmp_path / "out", *args], capsys)
    assert rc == 1 and needle in cap.err and len(cap.err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_writes_refuses_and_forces(tmp_path, capsys):
    out = tmp_path / "scene"
    small = ["--views", "2", "--test-views", "1", "--size", "40x30"]
    rc, cap = _cli([out, *small], capsys)
    assert rc == 0 and "2 train + 1 test views" in cap.out and "15 classes" in cap.out
    before = _files(out)
    rc, cap = _cli([out, *small, "--seed", "5"], capsys)
    assert rc == 1 and "not empty" in cap.err and _files(out) == before
    rc, cap = _cli([out, *small, "--seed", "5", "--force"], capsys)
    assert rc == 0 and _files(out) != before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    rc, cap = _cli([other, *small, "--force"], capsys)
    assert rc == 1 and "refusing" in cap.err and (other / "keep.txt").read_text() == "mine"


def test_failed_generation_leaves_nothing(tmp_path):
    def stop(done, total):
        if done == 2:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        generate(tmp_path / "scene", SynthConfig(**TINY), progress=stop)
    assert list(tmp_path.iterdir()) == []


def test_config_validation():
    assert parse_size("320x240") == (320, 240)
    for bad in (SynthConfig(kind="cave"), SynthConfig(sky="night"), SynthConfig(width=4), SynthConfig(views=1),
                SynthConfig(labels=LabelNoiseConfig(confusion_mean=2.0))):
        with pytest.raises(InputError):
            bad.validate()


@pytest.mark.slow
def test_default_scene_raw_label_miou_is_paper_like(tmp_path):
    summary = generate(tmp_path / "demo", SynthConfig())
    assert 0.55 < summary["raw_label_miou_test"] < 0.75
    assert summary["views"] == {"train": 64, "test": 16}


def test_texture_detail_layer_range_and_validation():
    from coseg.synth.textures import detail_layer

    pts = np.random.default_rng(0).uniform(-2, 2, (2000, 3))
    f = detail_layer(pts, np.zeros(2000, np.int64), 1.0)
    assert 0.5 <= f.min() < 0.7 and 1.3 < f.max() <= 1.5
    np.testing.assert_array_equal(detail_layer(pts, np.zeros(2000, np.int64), 0.0), 1.0)
    with pytest.raises(InputError, match="--texture-detail"):
        SynthConfig(texture_detail=1.5).validate()
