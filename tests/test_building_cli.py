"""`coseg build`, `coseg eval`, `coseg render` end to end on a tiny NeRF-layout scene folder."""

from __future__ import annotations

import json

import pytest
from tests.test_building_scene import make_scene, write_nerf_folder

from coseg.cli import main

FAST = ["--set", "init_max_points=100", "--set", "checkpoint_every=4", "--set", "densify_start=3",
        "--set", "densify_interval=3", "--max-sh-degree", "1"]


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    return write_nerf_folder(make_scene(tmp_path_factory.mktemp("cli") / "scene"))


def test_build_eval_render(scene_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["build", str(scene_dir), "--out", str(run), "--iterations", "6", *FAST]) == 0
    assert "done: 6 iterations" in capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    assert config["building"]["settings"]["max_sh_degree"] == 1
    assert config["building"]["init"]["method"] == "scene"  # points3d.ply was used

    assert main(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    assert "psnr" in out and "LPIPS: not available (no offline weights)" in out
    metrics = json.loads((run / "metrics.json").read_text())["building"]
    assert metrics["num_views"] == 2 and metrics["iterations"] == 6  # eval merged into training's section

    assert main(["render", str(run), "--what", "depth", "--out", str(tmp_path / "d")]) == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["view_003.png", "view_007.png"]

    assert main(["build", str(scene_dir), "--out", str(run)]) == 1
    assert "already holds a run" in capsys.readouterr().err


def test_import_then_render(scene_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["build", str(scene_dir), "--out", str(run), "--iterations", "2", *FAST]) == 0
    imported = tmp_path / "imported"
    assert main(["build", str(scene_dir), "--import-ply", str(run / "gaussians.ply"),
                 "--out", str(imported)]) == 0
    assert json.loads((imported / "config.json").read_text())["building"]["source"] == "import"
    assert main(["render", str(imported), "--split", "train", "--out", str(tmp_path / "rgb")]) == 0
    assert len(list((tmp_path / "rgb").glob("*.png"))) == 6


def test_resume_and_errors(scene_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["build", str(scene_dir), "--out", str(run), "--iterations", "5", *FAST]) == 0
    assert main(["build", "--resume", str(run)]) == 0  # already complete: nothing to do
    assert "done: 5 iterations" in capsys.readouterr().out
    assert main(["build", "--resume", str(tmp_path / "nope")]) == 1
    assert "not a run folder" in capsys.readouterr().err
    assert main(["build", str(scene_dir), "--out", str(tmp_path / "x"), "--set", "lr_foo=1"]) == 1
    assert "lr_foo" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "x")]) == 1


def test_build_with_a_time_budget_keeps_the_explicit_iterations(scene_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["build", str(scene_dir), "--out", str(run), "--minutes", "0.05", "--iterations", "4",
                 *FAST]) == 0
    assert "done: 4 iterations" in capsys.readouterr().out
    building = json.loads((run / "config.json").read_text())["building"]
    assert building["settings"]["budget_fixed"] == ["iterations"]
    assert building["budget"]["iterations_kept"] and not building["budget"]["cap_kept"]
    assert building["budget"]["iterations"] == 4 and building["budget"]["predicted_total_s"] > 0
    assert "budget" in json.loads((run / "metrics.json").read_text())["building"]
