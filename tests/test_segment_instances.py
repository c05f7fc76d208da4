"""Per-view instance masks through the pipeline: association, training, names, class-agnostic eval, coseg run.

The scene is a tiny generated room without its labels/ folder; its masks are
the GT instances with ids shuffled per view (as a 2D model's arbitrary ids),
so association through the Gaussians has to find the correspondences.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy.spatial import cKDTree

from coseg.errors import InputError
from coseg.gaussians import Gaussians
from coseg.io.images import read_id_map, write_png
from coseg.io.ply import read_gaussians_ply, read_point_cloud, write_gaussians_ply
from coseg.run import RunDir
from coseg.segment.config import SegmentConfig
from coseg.segment.stage import segment
from tests.test_segment_stage import chance_miou


def _gaussians(scene_dir):
    xyz, rgb = read_point_cloud(scene_dir / "points3d.ply")
    d, _ = cKDTree(xyz).query(xyz, k=4)
    return Gaussians.from_points(xyz, rgb, scale=np.maximum(d[:, 1:].mean(1), 1e-3), opacity=0.9)


def _shuffled_masks(scene_dir, out):
    """GT instances of every view with their ids permuted per view (0 stays "no mask")."""
    rng = np.random.default_rng(0)
    out.mkdir()
    for path in sorted((scene_dir / "gt_instances").glob("*.png")):
        inst = read_id_map(path, _shape(path))
        perm = np.concatenate([[0], rng.permutation(int(inst.max())) + 1]).astype(np.int32)
        write_png(out / path.name, perm[inst].astype(np.uint8))


def _shape(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.height, im.width


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    from coseg.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("inst")
    scene = root / "scene"
    generate(scene, SynthConfig(views=8, test_views=4, width=64, height=48, points=6000, seed=3))
    shutil.rmtree(scene / "labels")
    g = _gaussians(scene)
    write_gaussians_ply(g, root / "points_as_gaussians.ply")
    return root, scene


@pytest.fixture(scope="module")
def masked_run(unlabelled):
    root, scene = unlabelled
    _shuffled_masks(scene, scene / "masks")
    run = RunDir.create(root / "run", scene)
    shutil.copy(root / "points_as_gaussians.ply", run.gaussians_path)
    yield root / "run", scene
    shutil.rmtree(scene / "masks")


def _segment(run_dir, field="coseg", **kw):
    tiny = {"extractor": "appearance", "spatial_weights": "random"} if field == "coseg" else None
    config = SegmentConfig(field=field, field_config=tiny, iterations=10, log_every=5, **kw)
    return list(segment(run_dir, config, overwrite=True))


def test_masks_are_associated_voted_and_scored_class_agnostically(masked_run):
    from coseg.readers import read_scene
    from coseg.segment.evaluate import evaluate_segmentation

    run_dir, scene_dir = masked_run
    records = _segment(run_dir, field="label-vote")
    assert records[-1]["stage"] == "done"
    m = json.loads((run_dir / "metrics.json").read_text())["segmentation"]
    assert m["label_source"] == "instance_masks" and m["mask_folder"] == str(scene_dir / "masks")
    scene = read_scene(scene_dir)
    masks = sum(len(np.unique(read_id_map(scene_dir / "masks" / f"{c.name}.png", (c.height, c.width)))) - 1
                for c in scene.train_cameras)
    # Shuffled per-view ids of the same objects become far fewer segments than there are masks.
    assert 2 <= m["associated_segments"] < masks / 2
    names = json.loads((run_dir / "classes.json").read_text())
    assert all(v == f"object {k}" for k, v in names.items())
    assert set(np.unique(read_gaussians_ply(run_dir / "segmented.ply").segments)) <= {int(k) for k in names}
    result = evaluate_segmentation(run_dir, scene, split="train")
    assert result["matching"].startswith("each segment") and result["segments_matched"] >= 2
    assert result["miou"] > 2 * chance_miou(scene)
    assert 0 < result["instance_best_iou"] <= 1 and 0 < result["instances_at_iou_0.5"] <= 1


def test_coseg_field_trains_on_the_associated_ids(masked_run):
    run_dir, _ = masked_run
    records = _segment(run_dir)
    assert records[-1]["stage"] == "done" and any(r["stage"] == "train" for r in records)
    m = json.loads((run_dir / "metrics.json").read_text())["segmentation"]
    assert m["label_source"] == "instance_masks" and m["classes"] == list(range(1, m["segments_kept"] + 1))
    names = json.loads((run_dir / "classes.json").read_text())
    assert set(np.unique(read_gaussians_ply(run_dir / "segmented.ply").segments)) <= {int(k) for k in names}


def test_the_largest_segments_are_kept(masked_run):
    run_dir, _ = masked_run
    assert _segment(run_dir, field="label-vote", max_segments=3)[-1]["stage"] == "done"
    m = json.loads((run_dir / "metrics.json").read_text())["segmentation"]
    assert m["segments_kept"] == 3 and m["associated_segments"] > 3 and 0 < m["masked_pixels_kept"] < 1
    assert sorted(json.loads((run_dir / "classes.json").read_text())) == ["1", "2", "3"]


def test_bad_masks_are_one_line_each(unlabelled, tmp_path, capsys):
    from coseg.cli import main

    root, scene = unlabelled
    run = RunDir.create(tmp_path / "run", scene)
    shutil.copy(root / "points_as_gaussians.ply", run.gaussians_path)
    small = tmp_path / "small"
    small.mkdir()
    write_png(small / "r_0000.png", np.ones((7, 9), np.uint8))
    assert main(["segment", str(run.path), "--masks", str(small), "--seg-iterations", "5"]) == 1
    err = capsys.readouterr().err.strip()
    assert "r_0000.png" in err and len(err.splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no instance mask for any"):
        from coseg.readers import read_scene
        from coseg.segment.sources import check_masks

        s = read_scene(scene)
        check_masks(s, empty, s.train_cameras)
    assert main(["segment", str(run.path), "--labels", "semantic", "--seg-iterations", "5"]) == 1
    assert "no training view has a label map" in capsys.readouterr().err


def test_coseg_run_on_a_scene_without_labels_or_masks_makes_them(unlabelled, tmp_path, capsys):
    from coseg.cli import main

    root, shared = unlabelled
    scene = tmp_path / "scene"
    shutil.copytree(shared, scene, ignore=shutil.ignore_patterns("masks"))
    assert not (scene / "labels").exists() and not (scene / "masks").exists()
    out = tmp_path / "run"
    args = ["run", str(scene), "--out", str(out), "--import-ply", str(root / "points_as_gaussians.ply"),
            "--seg-iterations", "10", "--extractor", "appearance", "--spatial-weights", "random",
            "--generator", "regions", "--gen-features", "appearance", "--gen-set", "superpixels=150"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "labels:" in printed and "segmented:" in printed and "matching" in printed
    prov = json.loads((out / "masks" / "labels.json").read_text())
    assert prov["generator"] == "regions" and prov["completed"]
    assert not (scene / "masks").exists()  # the scene is never written
    m = json.loads((out / "metrics.json").read_text())
    assert m["segmentation"]["label_source"] == "instance_masks"
    assert m["segmentation"]["matching"].startswith("each segment") and 0 <= m["segmentation"]["miou"] <= 1
    # Resuming skips the finished labels stage (its masks are complete in the run).
    assert main(args + ["--resume"]) == 0
    assert "labels:" not in capsys.readouterr().out
