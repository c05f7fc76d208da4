"""`coseg run PHOTOS`: the poses stage before building, its plan, checks and data safety."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coseg.cli import main
from coseg.errors import CosegError, InputError
from coseg.io.safety import OutputRefused
from coseg.pipeline import Pipeline, PipelineRequest
from coseg.poses import is_photo_folder, recover_poses
from coseg.poses.sfm import STAGING_PREFIX, _clear_stale_staging


def _photos(folder: Path, n: int = 4, size=(96, 72)) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def test_a_photo_folder_is_told_apart_from_scenes(tmp_path):
    photos = _photos(tmp_path / "photos")
    assert is_photo_folder(photos)
    assert not is_photo_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert not is_photo_folder(tmp_path / "empty")
    (photos / "transforms.json").write_text('{"frames": []}')  # a (broken) nerf scene, not bare photos
    assert not is_photo_folder(photos)


def test_run_on_photos_plans_poses_first_then_masks_and_segments(tmp_path, caplog):
    from coseg.segment.config import SegmentConfig

    photos = _photos(tmp_path / "photos")
    pipeline = Pipeline(PipelineRequest(out=tmp_path / "run", scene=photos))
    pipeline.check()
    assert [s.name for s in pipeline.planned] == ["poses", "build", "labels", "segment", "eval"]
    assert pipeline.scene is None  # the scene does not exist before the poses stage
    assert pipeline.generator is not None and "without the segment stage" not in caplog.text
    assert not (tmp_path / "run").exists()  # checking writes nothing
    # Semantic labels need label maps, which bare photos do not have: no labels or segment stage, one warning.
    semantic = Pipeline(PipelineRequest(out=tmp_path / "run", scene=photos, segment=SegmentConfig(labels="semantic")))
    semantic.check()
    assert [s.name for s in semantic.planned] == ["poses", "build", "eval"]
    assert "no label maps" in caplog.text and "without the segment stage" in caplog.text
    # Masks the user gives are used as they are (no labels stage); a missing folder is one line first.
    given = tmp_path / "given"
    given.mkdir()
    masked = Pipeline(PipelineRequest(out=tmp_path / "run", scene=photos, segment=SegmentConfig(masks=str(given))))
    masked.check()
    assert [s.name for s in masked.planned] == ["poses", "build", "segment", "eval"]
    with pytest.raises(InputError, match="not a folder"):
        Pipeline(PipelineRequest(out=tmp_path / "run", scene=photos,
                                 segment=SegmentConfig(masks=str(tmp_path / "nope")))).check()
    assert not (tmp_path / "run").exists()
    # coseg build of bare photos has no poses stage: one line saying what to run first.
    with pytest.raises(InputError, match="photos without camera poses; recover them first with coseg poses"):
        Pipeline(PipelineRequest(out=tmp_path / "run2", scene=photos), ("build",)).check()


@pytest.mark.parametrize("where", ["inside", "equal", "around"])
def test_the_run_may_not_be_in_around_or_equal_to_the_photos(tmp_path, where):
    photos = _photos(tmp_path / "shoot" / "photos")
    out = {"inside": photos / "run", "equal": photos, "around": tmp_path / "shoot"}[where]
    before = _snapshot(photos)
    with pytest.raises(OutputRefused, match="photos folder"):
        Pipeline(PipelineRequest(out=out, scene=photos)).check()
    assert _snapshot(photos) == before


def test_mixed_photo_sizes_fail_before_anything_starts(tmp_path, capsys):
    photos = _photos(tmp_path / "photos")
    Image.new("RGB", (50, 40)).save(photos / "p9.png")
    assert main(["run", str(photos), "--out", str(tmp_path / "run")]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "photos of different sizes" in err[0] and "p9.png: 50x40" in err[0]
    assert not (tmp_path / "run").exists()


def test_photos_sfm_cannot_register_leave_no_run_and_one_line(tmp_path, capsys):
    photos = _photos(tmp_path / "noise")
    before = _snapshot(photos)
    assert main(["run", str(photos), "--out", str(tmp_path / "run")]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "%|" not in line]
    assert len(err) == 1 and "structure from motion registered" in err[0] and "of 4 photos" in err[0], err
    assert not (tmp_path / "run").exists()  # nothing half-made is left
    assert _snapshot(photos) == before


def test_a_killed_runs_staging_folder_is_removed_a_live_one_refused(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="coseg")
    scene = tmp_path / "scene"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (scene / f"{STAGING_PREFIX}{dead.pid}" / "models").mkdir(parents=True)
    _clear_stale_staging(scene)
    assert not any(scene.iterdir()) and "left by a run that was killed" in caplog.text
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (scene / f"{STAGING_PREFIX}{live.pid}").mkdir()
        with pytest.raises(CosegError, match=rf"another coseg poses \(process {live.pid}\) is writing"):
            for _ in recover_poses(_photos(tmp_path / "photos"), scene):
                pass
        assert (scene / f"{STAGING_PREFIX}{live.pid}").is_dir()  # never reused nor removed
    finally:
        live.kill()
        live.wait()


@pytest.mark.slow
def test_coseg_run_on_bare_photos_recovers_cameras_then_builds(tmp_path):
    """16 + 4 photos of `coseg synth --texture-detail 1` (320x240; 8 + 2 at 160x120 registered 0):
    the poses stage writes RUN/scene, the build reads it, the labels stage makes masks of the
    registered photos, the segment stage learns from them, eval scores the build; the photos are unchanged."""
    from coseg.run import RunDir

    synth = tmp_path / "synth"
    assert main(["-q", "synth", str(synth), "--views", "16", "--test-views", "4", "--texture-detail", "1"]) == 0
    photos = synth / "images"
    before = _snapshot(photos)
    run = tmp_path / "run"
    assert main(["run", str(photos), "--out", str(run), "--iterations", "30", "--seg-iterations", "20",
                 "--field", "label-vote"]) == 0
    assert _snapshot(photos) == before
    scene = run / "scene"
    assert (scene / "sparse" / "0").is_dir() and (scene / "poses.json").is_file()
    config = RunDir.open(run).read_config()
    assert config["scene"]["path"] == str(scene.resolve())
    metrics = RunDir.open(run).read_metrics()
    assert (run / "gaussians.ply").is_file() and metrics["building"]["split"] == "test"
    assert metrics["building"]["num_views"] >= 2 and np.isfinite(metrics["building"]["psnr"])
    masks = sorted(p.stem for p in (run / "masks").glob("*.png"))
    assert masks and set(masks) <= {p.stem for p in photos.iterdir()}
    assert (run / "segmented.ply").is_file()
    assert metrics["segmentation"]["label_source"] == "instance_masks"
    # Resuming skips the completed stages; the recorded scene is read back from the run.
    assert main(["run", str(photos), "--out", str(run), "--resume"]) == 0
    assert main(["info", str(run)]) == 0


def test_coseg_run_takes_the_structure_from_motion_options_of_coseg_poses(tmp_path, capsys):
    from coseg.cli import build_parser
    from coseg.cli.segment import pipeline_from_args
    from coseg.poses import PosesConfig

    photos = _photos(tmp_path / "photos")
    args = build_parser().parse_args(["run", str(photos), "--out", str(tmp_path / "run"), "--matcher", "sequential",
                                      "--overlap", "4", "--camera-model", "OPENCV", "--max-image-size", "800",
                                      "--max-features", "2048", "--sfm-threads", "1", "--sfm-seed", "3",
                                      "--link", "symlink"])
    poses = pipeline_from_args(args).request.poses
    assert poses == PosesConfig(matcher="sequential", overlap=4, camera_model="OPENCV", max_image_size=800,
                                max_features=2048, threads=1, seed=3, link="symlink")
    # The same names and defaults as coseg poses; a bad value is one line before anything starts.
    defaults = build_parser().parse_args(["poses", str(photos), "--out", str(tmp_path / "scene")])
    from coseg.cli.poses import sfm_config_from_args

    assert sfm_config_from_args(defaults) == PosesConfig()
    assert main(["run", str(photos), "--out", str(tmp_path / "run"), "--max-features", "0"]) == 1
    err = capsys.readouterr().err
    assert "max" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
