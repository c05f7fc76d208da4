"""The segmentation stage end to end on a tiny generated scene.

The Gaussians come from the scene's own point cloud (no building stage, to
keep the test fast): dense enough for a 64x48 view, and the field must learn
to label them well above chance within 50 iterations.
"""

import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from coseg.errors import InputError
from coseg.gaussians import Gaussians
from coseg.io.ply import read_gaussians_ply, read_point_cloud, write_gaussians_ply
from coseg.run import RunDir
from coseg.segment.config import SegmentConfig
from coseg.segment.stage import segment


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from coseg.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("seg")
    scene = root / "scene"
    generate(scene, SynthConfig(views=8, test_views=4, width=64, height=48, points=6000, seed=3))
    xyz, rgb = read_point_cloud(scene / "points3d.ply")
    d, _ = cKDTree(xyz).query(xyz, k=4)
    g = Gaussians.from_points(xyz, rgb, scale=np.maximum(d[:, 1:].mean(1), 1e-3), opacity=0.9)
    run = RunDir.create(root / "run", scene)
    write_gaussians_ply(g, run.gaussians_path)
    return root / "run", scene


#: The CoSeg field's settings in these tests: no weights to load.
TINY_COSEG = {"extractor": "appearance", "spatial_weights": "random"}


def _run(run_dir, iterations=50, field="coseg", **kw):
    config = SegmentConfig(field=field, field_config=TINY_COSEG if field == "coseg" else None,
                           iterations=iterations, log_every=10, **kw)
    return list(segment(run_dir, config, overwrite=True))  # the tests share one run


def test_coseg_stage_learns_above_chance_and_writes_outputs(tiny_run):
    from coseg.readers import read_scene
    from coseg.segment.evaluate import evaluate_segmentation

    run_dir, scene_dir = tiny_run
    records = _run(run_dir)
    stages = [r["stage"] for r in records]
    assert stages[-1] == "done" and "train" in stages and "features" in stages
    train = [r for r in records if r["stage"] == "train"]
    assert train[-1]["iteration"] == 50
    seg = read_gaussians_ply(run_dir / "segmented.ply")
    assert seg.segments is not None and len(np.unique(seg.segments)) >= 2
    metrics = json.loads((run_dir / "metrics.json").read_text())["segmentation"]
    assert metrics["feature_extractor"] == "appearance"
    assert metrics["learnable_params_mb"] > 0
    assert metrics["peak_rss_mb"] > 0 and metrics["segmentation_total_s"] > 0
    # the feature cache is written; the per-process spill folder of the two-pass PCA is gone
    assert list((run_dir / "cache").glob("unprojected-*.npz"))
    assert not list((run_dir / "cache").glob("spill*"))
    scene = read_scene(scene_dir)
    result = evaluate_segmentation(run_dir, scene, split="train")
    assert result["miou"] > chance_miou(scene)
    assert result["accuracy"] > 0.3
    assert result["raw_label_miou"] > 0.3 and "calinski_harabasz" in result
    # mIoU is the mean of the per-class IoUs it reports
    assert np.mean(list(result["class_iou"].values())) == pytest.approx(result["miou"], abs=1e-4)
    # the hard per-Gaussian ids the studio edits are scored too
    assert result["hard_id_miou"] > chance_miou(scene)
    assert 0 < result["compactness_segment_share"] <= 1 and 0 < result["compactness_object_share"] <= 1
    assert 0 < result["neighbour_agreement"] <= 1


def chance_miou(scene) -> float:
    """Expected mIoU of a uniformly random prediction, from the GT class frequencies."""
    ids = np.concatenate([scene.load_gt(c).ravel() for c in scene.train_cameras])
    classes, counts = np.unique(ids, return_counts=True)
    p, k = counts / counts.sum(), len(classes)
    return float(np.mean((p / k) / (p + 1 / k - p / k)))


def test_per_gaussian_baseline_runs(tiny_run):
    records = _run(tiny_run[0], iterations=20, field="per-gaussian")
    assert records[-1]["stage"] == "done"
    assert records[-1]["field"] == "per-gaussian"


def test_rms_features_and_the_logit_regulariser_train_through_the_stage(tiny_run):
    run_dir, _ = tiny_run
    config = SegmentConfig(field="coseg", iterations=20, log_every=10,
                           field_config={**TINY_COSEG, "feature_norm": "rms", "loss": {"lambda_logits": 0.2}})
    records = list(segment(run_dir, config, overwrite=True))
    train = [r for r in records if r["stage"] == "train"]
    assert train[-1]["iteration"] == 20 and train[-1]["reg_logits"] > 0
    # the RMS-normalised features are cached under their own key, beside the L2 ones of the other tests
    assert len(list((run_dir / "cache").glob("unprojected-*.npz"))) >= 1
    with pytest.raises(Exception, match="feature_norm"):
        SegmentConfig(field="coseg", field_config={**TINY_COSEG, "feature_norm": "unit"})


def test_stop_then_resume(tiny_run):
    import threading

    class StopAt(threading.Event):
        def __init__(self, n):
            super().__init__()
            self.calls, self.n = 0, n

        def is_set(self):
            self.calls += 1
            return self.calls > self.n

    run_dir = tiny_run[0]
    config = SegmentConfig(iterations=20, log_every=5, field_config=TINY_COSEG)
    recs = list(segment(run_dir, config, stop_event=StopAt(4 + 12), overwrite=True))
    assert recs[-1]["stage"] == "stopped"
    stopped_at = recs[-1]["iteration"]
    assert 0 < stopped_at < 20
    resumed = list(segment(run_dir, config, resume=True))
    train = [r for r in resumed if r["stage"] == "train"]
    assert train[0]["iteration"] > stopped_at and resumed[-1]["stage"] == "done"


def test_run_without_building_stage_is_clear(tmp_path):
    RunDir.create(tmp_path / "empty", tmp_path)
    with pytest.raises(InputError, match="no gaussians.ply"):
        list(segment(tmp_path / "empty", SegmentConfig(iterations=1)))


def test_labels_with_one_class_only_is_clear(tmp_path):
    import shutil

    import imageio.v3 as iio

    from coseg.synth import SynthConfig, generate

    scene = tmp_path / "scene"
    generate(scene, SynthConfig(views=3, test_views=1, width=32, height=24, points=500, seed=1))
    for f in (scene / "labels").iterdir():
        iio.imwrite(f, (iio.imread(f) * 0 + 4).astype("uint8"))
    xyz, rgb = read_point_cloud(scene / "points3d.ply")
    run = RunDir.create(tmp_path / "run", scene)
    write_gaussians_ply(Gaussians.from_points(xyz, rgb, scale=0.05, opacity=0.9), run.gaussians_path)
    with pytest.raises(InputError, match="hold 1 class"):
        list(segment(run.path, SegmentConfig(iterations=1, field_config=TINY_COSEG)))
    shutil.rmtree(scene / "labels")
    with pytest.raises(InputError, match="no raw labels — neither labels/<stem>.png nor masks/<stem>.png"):
        list(segment(run.path, SegmentConfig(iterations=1, field_config=TINY_COSEG)))
    with pytest.raises(InputError, match="no training view has a label map"):
        list(segment(run.path, SegmentConfig(iterations=1, field_config=TINY_COSEG, labels="semantic")))


def test_cosine_schedule_runs_from_the_start_rate_to_the_final_ratio():
    from coseg.segment.stage import lr_factor

    def factors(schedule):
        config = SegmentConfig(iterations=101, lr_schedule=schedule, lr_final_ratio=0.02)
        return np.array([lr_factor(config, it) for it in range(1, 102)])

    assert np.all(factors("constant") == 1.0)
    cos = factors("cosine")
    assert cos[0] == pytest.approx(1.0) and cos[-1] == pytest.approx(0.02)
    assert cos[50] == pytest.approx(0.51)  # half way: the mean of start and end
    assert np.all(np.diff(cos) < 0)
    for bad in (dict(lr_schedule="step"), dict(field="vote"), dict(lr_final_ratio=0.0)):
        with pytest.raises(InputError):
            SegmentConfig(**bad)


def test_label_vote_field_needs_no_training_and_labels_above_chance(tiny_run):
    from coseg.readers import read_scene
    from coseg.segment.evaluate import evaluate_segmentation
    from coseg.segment.stage import load_segmentation

    run_dir, scene_dir = tiny_run
    records = _run(run_dir, field="label-vote")
    assert [r["stage"] for r in records] == ["vote", "infer", "done"]
    done = records[-1]
    assert done["field"] == "label-vote" and done["learnable_params_mb"] == 0.0
    seg = load_segmentation(run_dir)
    votes = seg["logits"]
    # class fractions of each kept Gaussian's blended training pixels
    assert votes.min() >= 0 and np.all(votes.sum(1) <= 1 + 1e-4) and np.all(votes.sum(1) > 0)
    ply = read_gaussians_ply(run_dir / "segmented.ply")
    assert np.array_equal(ply.segments, seg["class_ids"][votes.argmax(1)])
    # (the tiny scene's unoptimised Gaussians limit every field: a vote of the ground truth itself
    # reaches only ~46 % mIoU on its training views, so chance is the bar here)
    scene = read_scene(scene_dir)
    assert evaluate_segmentation(run_dir, scene, split="train")["miou"] > 2 * chance_miou(scene)


def test_fill_from_nearest_copies_the_closest_row_that_has_values():
    from coseg.segment.infer import fill_from_nearest

    xyz = np.array([[0, 0, 0], [10, 0, 0], [1, 0, 0], [9, 0, 0]], np.float32)
    values = np.array([[1, 0], [0, 1], [0, 0], [0, 0]], np.float32)
    have = np.array([True, True, False, False])
    assert fill_from_nearest(values, xyz, have) == 2
    assert values.tolist() == [[1, 0], [0, 1], [1, 0], [0, 1]]
    assert fill_from_nearest(values, xyz, np.ones(4, bool)) == 0


def test_a_scene_without_ground_truth_is_not_scored_and_not_an_error(tmp_path, caplog):
    """A real capture has no gt/: eval leaves the segmentation section out (one info line)."""
    from types import SimpleNamespace

    from coseg.segment.outputs import evaluate

    (tmp_path / "segmentation.npz").write_bytes(b"")
    scene = SimpleNamespace(root=tmp_path / "capture", test_cameras=[SimpleNamespace(gt_path=None)] * 3)
    with caplog.at_level("INFO", logger="coseg.segment.outputs"):
        assert evaluate(SimpleNamespace(path=tmp_path), scene) is None
    assert "not scored" in caplog.text
