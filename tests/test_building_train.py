"""Training loop of the building stage on a tiny scene: smoke run, stop, resume, import, eval, render."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from tests.test_building_scene import make_scene

from coseg.building import BuildConfig, import_ply, train
from coseg.building.evaluate import RenderContext, evaluate_building, render_views
from coseg.errors import InputError
from coseg.gaussians import Gaussians
from coseg.io.ply import read_gaussians_ply
from coseg.run import RunDir

FAST = dict(init_max_points=150, max_gaussians=400, checkpoint_every=10, log_every=5,
            densify_start=4, densify_interval=4, opacity_reset_interval=12, max_sh_degree=1, sh_interval=8)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("building") / "scene")


def _params(run_path) -> dict[str, np.ndarray]:
    g = read_gaussians_ply(run_path / "gaussians.ply")
    return {k: getattr(g, k) for k in ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")}


def test_smoke_run_lowers_the_loss_and_writes_the_run(scene, tmp_path):
    # no densification here (it changes the image abruptly); the resume test covers it
    config = BuildConfig(iterations=20, **{**FAST, "log_every": 1, "densify_start": 100})
    records = list(train(scene, config, tmp_path / "run"))
    assert [r["iteration"] for r in records] == list(range(1, 21))
    assert records[-1]["event"] == "done" and records[0]["event"] == "step"
    psnrs = [r["psnr"] for r in records]
    assert psnrs[-1] > psnrs[0] + 0.4 and all(b > a for a, b in zip(psnrs, psnrs[1:]))
    run = RunDir.open(tmp_path / "run")
    building = run.read_config()["building"]
    assert building["settings"]["iterations"] == 20 and building["settings"]["densify_interval"] == 4
    assert building["init"]["method"] == "scene"
    metrics = run.read_metrics()["building"]
    assert metrics["completed"] and metrics["iterations"] == 20
    assert 0 < metrics["raster_share"] < 1
    assert len(read_gaussians_ply(run.gaussians_path)) == records[-1]["num_gaussians"]


def test_resume_after_a_kill_is_bit_for_bit(scene, tmp_path):
    config = BuildConfig(iterations=20, **FAST)
    list(train(scene, config, tmp_path / "a"))

    gen = train(scene, config, tmp_path / "b")
    for rec in gen:  # "kill" after step 13: the checkpoint of step 10 remains
        if rec["iteration"] == 13:
            gen.close()
            break
    assert not (tmp_path / "b" / "gaussians.ply").exists()
    records = list(train(scene, BuildConfig(), tmp_path / "b", resume=True))
    assert records[0]["iteration"] == 11 and records[-1]["event"] == "done"
    assert records[0]["num_gaussians"] != 150  # densified before the checkpoint
    a, b = _params(tmp_path / "a"), _params(tmp_path / "b")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_stop_request_writes_a_resumable_checkpoint(scene, tmp_path):
    stop = threading.Event()
    records = []
    for rec in train(scene, BuildConfig(iterations=30, **FAST), tmp_path / "run", stop):
        records.append(rec)
        if rec["iteration"] == 6:
            stop.set()
    assert records[-1]["event"] == "stopped" and records[-1]["iteration"] == 7
    run = RunDir.open(tmp_path / "run")
    assert run.read_metrics()["building"]["completed"] is False
    # a stopped build is no result: the checkpoint is its resume point (docs/data-safety.md)
    assert (run.checkpoints_dir / "ckpt_0000007.pt").exists() and not run.gaussians_path.exists()
    records = list(train(scene, BuildConfig(), run, resume=True))
    assert records[0]["iteration"] == 8 and records[-1]["iteration"] == 30


def test_bad_inputs(scene, tmp_path):
    one_view = type(scene)(scene.root, "test", scene.train_cameras[:1])
    with pytest.raises(InputError, match="at least 2"):
        next(train(one_view, BuildConfig(iterations=2), tmp_path / "r1"))
    run = RunDir.create(tmp_path / "r2")
    cfg = run.read_config()
    cfg["format_version"] = -1
    run.config_path.write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="run format version"):
        next(train(scene, BuildConfig(iterations=2), run.path, resume=True))
    with pytest.raises(InputError, match="no building checkpoint to resume from"):
        next(train(scene, BuildConfig(iterations=2), RunDir.create(tmp_path / "r3").path, resume=True))


def _write_inria_ply_with_plyfile(path, g: Gaussians) -> None:
    from plyfile import PlyData, PlyElement

    n, k = len(g), g.sh_rest.shape[1]
    names = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
             + [f"f_rest_{i}" for i in range(3 * k)]
             + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    rest = g.sh_rest.transpose(0, 2, 1).reshape(n, 3 * k)  # channel-major
    cols = np.concatenate([g.means, np.zeros((n, 3), np.float32), g.sh_dc, rest,
                           g.opacity_logits[:, None], g.log_scales, g.quats], axis=1)
    vertex = np.empty(n, dtype=[(name, "f4") for name in names])
    for i, name in enumerate(names):
        vertex[name] = cols[:, i]
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(path))


def test_import_of_an_inria_ply_renders_as_before_export(scene, tmp_path):
    from coseg.render import camera_tensors, gaussian_tensors, rasterization

    rng = np.random.default_rng(1)
    g = Gaussians.from_points(rng.uniform(-0.5, 0.5, (80, 3)).astype(np.float32),
                              rng.uniform(0, 1, (80, 3)).astype(np.float32), scale=0.08, opacity=0.7,
                              sh_degree=2)
    g.sh_rest[:] = rng.normal(0, 0.1, g.sh_rest.shape)
    g.quats[:] = rng.normal(size=(80, 4))
    cam = scene.test_cameras[0]
    t = gaussian_tensors(g)
    before, _, _ = rasterization(t["means"], t["quats"], t["scales"], t["opacities"], t["sh"],
                                 *camera_tensors(cam), cam.width, cam.height, sh_degree=2)
    _write_inria_ply_with_plyfile(tmp_path / "trained.ply", g)
    run = RunDir.create(tmp_path / "run", scene.root)
    import_ply(tmp_path / "trained.ply", run)
    assert run.read_config()["building"]["source"] == "import"
    after = RenderContext.load(run, scene).render(cam)[0]
    # RenderContext renders in the run's working frame (coseg.normalize): float32 rounding only.
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)
    with pytest.raises(InputError, match="not found"):
        import_ply(tmp_path / "missing.ply", run)


def test_eval_and_render_outputs(scene, tmp_path):
    run = RunDir(tmp_path / "run")
    # no far field: the depth check below is about the scene's own surfaces
    list(train(scene, BuildConfig(iterations=10, **{**FAST, "far_field_spacing": 0}), run))
    run.update_metrics("segmentation", {"miou": 0.25})
    metrics = evaluate_building(run, scene)
    assert metrics["split"] == "test" and metrics["num_views"] == len(scene.test_cameras)
    assert 5 < metrics["psnr"] < 60 and 0 < metrics["ssim"] <= 1 and metrics["lpips"] is None
    assert metrics["train_time_s"] > 0 and metrics["render_fps"] > 0
    ctx = RenderContext.load(run, scene)
    rgb = render_views(ctx, scene.test_cameras, "rgb", tmp_path / "rgb")
    depth = render_views(ctx, scene.test_cameras, "depth", tmp_path / "depth")
    assert [p.stem for p in rgb] == [c.name for c in scene.test_cameras]
    import imageio.v3 as iio

    d = iio.imread(depth[0])
    assert d.dtype == np.uint16 and d.shape == (48, 64)
    covered = d[d > 0] / 1000.0  # mm -> m: the scene lies about 3 m from the cameras
    assert covered.size and 1.5 < np.median(covered) < 4.5
    with pytest.raises(InputError, match="unknown output"):
        render_views(ctx, scene.test_cameras, "nope", tmp_path / "x")
