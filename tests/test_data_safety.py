"""The data-safety contract from the command line (docs/data-safety.md, issue 11).

Inputs are never written, results are never silently replaced, a stopped
stage is distinguishable (exit code 130, ``"completed": false``, no result)
and every refusal or failure is one line naming the path or the option.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from scipy.spatial import cKDTree

from coseg.cli import EXIT_STOPPED, main
from coseg.gaussians import Gaussians
from coseg.io.ply import read_point_cloud, write_gaussians_ply
from coseg.run import RunDir

FAST = ["--set", "init_max_points=200", "--set", "checkpoint_every=3", "--max-sh-degree", "0"]
SEG = ["--extractor", "appearance", "--spatial-weights", "random", "--no-eval"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from coseg.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("safety") / "scene"
    generate(root, SynthConfig(views=6, test_views=2, width=48, height=36, points=3000, seed=2))
    return root


def _run_from_points(scene, path) -> RunDir:
    """A run whose gaussians.ply is the scene's point cloud (no building: fast)."""
    xyz, rgb = read_point_cloud(scene / "points3d.ply")
    d, _ = cKDTree(xyz).query(xyz, k=4)
    run = RunDir.create(path, scene)
    write_gaussians_ply(Gaussians.from_points(xyz, rgb, scale=np.maximum(d[:, 1:].mean(1), 1e-3), opacity=0.9),
                        run.gaussians_path)
    return run


def _segmented_ply(folder):
    g = Gaussians.from_points(np.random.default_rng(0).uniform(-1, 1, (40, 3)), np.full((40, 3), 0.5))
    g.segments = np.arange(40, dtype=np.int32) % 2
    write_gaussians_ply(g, folder / "seg.ply")
    return folder / "seg.ply"


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line(err: str) -> str:
    """The one error line of a command's stderr (progress bars aside); no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0][lines[0].index("coseg "):]


def _cli(capsys, *args) -> tuple[int, str]:
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


class _StopAfter(threading.Event):
    """A stop event that reports a stop request from its n-th check on (a Ctrl-C at a known step)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.calls, self.n = 0, n

    def is_set(self) -> bool:
        self.calls += 1
        return self.calls > self.n


@pytest.fixture
def ctrl_c(monkeypatch):
    """Make the CLI's Ctrl-C handler report a stop after `n` checks: ``ctrl_c(n)``."""
    import contextlib

    import coseg.cli.stopping as stopping

    def arm(n: int) -> None:
        monkeypatch.setattr(stopping, "stop_on_sigint", lambda what="step": contextlib.nullcontext(_StopAfter(n)))

    return arm


# ------------------------------------------------------------ inputs are never written
def test_render_into_the_scene_inputs_is_refused(scene, tmp_path, capsys):
    run = _run_from_points(scene, tmp_path / "run")
    before = _files(scene)
    for target in (scene / "images", scene / "labels", scene, tmp_path):
        rc, err = _cli(capsys, "render", run.path, "--out", target, "--split", "train")
        assert rc == 1 and "refusing" in _one_line(err)
    assert _files(scene) == before
    rc, err = _cli(capsys, "render", run.path, "--out", run.path, "--split", "train")
    assert rc == 1 and "refusing" in _one_line(err)


def test_outputs_inside_inputs_and_inputs_inside_outputs_are_refused(scene, tmp_path, capsys):
    before = _files(scene)
    for out in (scene, scene / "images" / "run", scene.parent):
        rc, err = _cli(capsys, "build", scene, "--out", out, "--iterations", "2", *FAST)
        assert rc == 1 and "refusing" in _one_line(err)
    assert _files(scene) == before
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep")
    rc, err = _cli(capsys, "build", scene, "--out", tmp_path / "notes", "--iterations", "2", *FAST)
    assert rc == 1 and "not empty" in _one_line(err) and (tmp_path / "notes" / "mine.txt").read_text() == "keep"


def test_edit_over_a_run_result_or_an_input_is_refused(scene, tmp_path, capsys):
    run = _run_from_points(scene, tmp_path / "run")
    assert _cli(capsys, "segment", run.path, "--field", "label-vote", "--no-eval")[0] == 0
    before = _files(run.path)
    targets = [run.path / "gaussians.ply", run.path / "segmented.ply", run.path / "checkpoints" / "x.ply",
               scene / "points3d.ply", scene / "images" / "edited.splat"]
    for out in targets:
        rc, err = _cli(capsys, "edit", run.path, "--delete", "1", "--out", out, "--force")
        assert rc == 1 and "refusing" in _one_line(err), out
        rc, err = _cli(capsys, "export", run.path / "segmented.ply", "--out", out, "--force")
        assert rc == 1 and "refusing" in _one_line(err), out
    assert _files(run.path) == before and not (scene / "images" / "edited.splat").exists()


# ------------------------------------------------------------ results are never silently replaced
def test_segment_again_needs_overwrite_and_keeps_the_previous_result(scene, tmp_path, capsys):
    run = _run_from_points(scene, tmp_path / "run")
    assert _cli(capsys, "segment", run.path, "--field", "label-vote", "--no-eval")[0] == 0
    first = (run.path / "segmented.ply").read_bytes()
    rc, err = _cli(capsys, "segment", run.path, "--field", "label-vote", "--no-eval")
    assert rc == 1 and "--overwrite" in _one_line(err)
    assert (run.path / "segmented.ply").read_bytes() == first
    rc, err = _cli(capsys, "segment", run.path, "--field", "label-vote", "--no-eval", "--overwrite",
                   "--attendance-tau", "0.001")
    assert rc == 0, err
    kept = list((run.path / "previous").glob("segmentation-*/segmented.ply"))
    assert len(kept) == 1 and kept[0].read_bytes() == first
    assert json.loads((kept[0].parent / "config.json").read_text())["segmentation"]["attendance_tau"] == 1e-6


def test_nonsense_segment_options_fail_before_anything_is_replaced(scene, tmp_path, capsys):
    run = _run_from_points(scene, tmp_path / "run")
    assert _cli(capsys, "segment", run.path, "--field", "label-vote", "--no-eval")[0] == 0
    before = _files(run.path)
    for args, option in ((["--seg-iterations", "-1"], "--seg-iterations"), (["--pi-label", "1.5"], "--pi-label"),
                         (["--class-balance", "nan"], "--class-balance"), (["--seg-seed", "-3"], "--seg-seed"),
                         (["--attendance-tau", "-1"], "--attendance-tau"),
                         (["--lambda-logits", "-0.5"], "--lambda-logits")):
        rc, err = _cli(capsys, "segment", run.path, "--overwrite", *SEG, *args)
        assert rc == 1 and _one_line(err).startswith(f"coseg segment: error: {option} "), err
    assert _files(run.path) == before


def test_segment_resume_without_a_checkpoint_says_so(scene, tmp_path, capsys):
    run = _run_from_points(scene, tmp_path / "run")
    rc, err = _cli(capsys, "segment", run.path, "--resume", *SEG)
    assert rc == 1 and "no segmentation checkpoint to resume from" in _one_line(err)
    assert not (run.path / "segmented.ply").exists() and not (run.path / "cache").exists()


def test_stopped_segmentation_exits_130_keeps_the_old_result_and_resumes(scene, tmp_path, capsys, ctrl_c):
    run = _run_from_points(scene, tmp_path / "run")
    assert _cli(capsys, "segment", run.path, "--field", "label-vote", "--no-eval")[0] == 0
    old = (run.path / "segmented.ply").read_bytes()
    ctrl_c(20)  # stops during training (the feature and spatial passes check it once per view)
    rc, _ = _cli(capsys, "segment", run.path, "--overwrite", "--seg-iterations", "30", *SEG)
    assert rc == EXIT_STOPPED
    assert (run.path / "segmented.ply").read_bytes() == old  # the previous result stays in place
    attempt = run.read_metrics()["segmentation"]
    assert attempt["completed"] is False and 0 < attempt["iteration"] < 30 and not run.stage_completed("segmentation")
    ctrl_c(10 ** 9)
    rc, err = _cli(capsys, "segment", run.path, "--resume", "--no-eval")
    assert rc == 0, err
    assert run.stage_completed("segmentation") and (run.path / "segmented.ply").read_bytes() != old
    assert run.read_config()["segmentation"]["iterations"] == 30  # resumed with its own settings


# ------------------------------------------------------------ stopped stages are distinguishable
def test_stopped_build_exits_130_writes_no_result_and_resumes(scene, tmp_path, capsys, ctrl_c):
    run = tmp_path / "run"
    ctrl_c(4)
    rc, _ = _cli(capsys, "build", scene, "--out", run, "--iterations", "9", *FAST)
    assert rc == EXIT_STOPPED
    metrics = json.loads((run / "metrics.json").read_text())["building"]
    assert metrics["completed"] is False and not (run / "gaussians.ply").exists()
    assert list((run / "checkpoints").glob("ckpt_*.pt"))
    rc, err = _cli(capsys, "segment", run, *SEG)  # never continues on a partial result
    assert rc == 1 and "no gaussians.ply" in _one_line(err)
    ctrl_c(10 ** 9)
    assert _cli(capsys, "build", "--resume", run)[0] == 0
    assert RunDir(run).stage_completed("building")


def test_run_checks_every_input_before_the_first_stage(scene, tmp_path, capsys):
    import shutil

    broken = tmp_path / "scene"
    shutil.copytree(scene, broken)
    label = sorted((broken / "labels").iterdir())[0]
    label.write_bytes(b"not a png at all")
    rc, err = _cli(capsys, "run", broken, "--out", tmp_path / "run", "--iterations", "5", *SEG[:4])
    assert rc == 1 and label.name in _one_line(err)
    assert not (tmp_path / "run").exists()  # nothing was built, no run folder made
    shutil.rmtree(broken / "labels")  # without labels/ or masks/ a labels stage makes masks, unless told not to
    rc, err = _cli(capsys, "run", broken, "--out", tmp_path / "run", "--iterations", "5", *SEG[:4],
                   "--labels", "semantic")
    assert rc == 1 and "no training view has a label map" in _one_line(err)
    rc, err = _cli(capsys, "run", scene, "--out", tmp_path / "run", "--iterations", "5", "--spatial-weights",
                   tmp_path / "missing.pt")
    assert rc == 1 and "--spatial-weights" in _one_line(err) and not (tmp_path / "run").exists()


# ------------------------------------------------------------ one line, nothing half-written
def test_set_values_are_typed_and_checked_leaving_no_run_folder(scene, tmp_path, capsys):
    out = tmp_path / "run"
    for bad, option in (("lr_opacity=abc", "--set lr_opacity"), ("lr_means=NaN", "--set lr_means"),
                        ("lr_opacity=-1", "--set lr_opacity"), ("densify_interval=2.5", "--set densify_interval"),
                        ("init_opacity=1", "--set init_opacity"), ("max_gaussians=true", "--set max_gaussians")):
        rc, err = _cli(capsys, "build", scene, "--out", out, "--set", bad)
        assert rc == 1 and _one_line(err).startswith(f"coseg build: error: {option} "), err
        assert not out.exists()
    for args, option in ((["--iterations", "0"], "--iterations"), (["--downscale", "0"], "--downscale"),
                         (["--max-sh-degree", "4"], "--max-sh-degree"), (["--seed", "-1"], "--seed"),
                         (["--backend", "gpu"], "--backend")):
        rc, err = _cli(capsys, "build", scene, "--out", out, *args)
        assert rc == 1 and _one_line(err).startswith(f"coseg build: error: {option} "), err
        assert not out.exists()
    rc, err = _cli(capsys, "synth", tmp_path / "s", "--seed", "-1")
    assert rc == 1 and _one_line(err).startswith("coseg synth: error: --seed ")


def _read_only(monkeypatch, root):
    """Simulate a read-only file system at `root` (tests run as root, so chmod would not stop writes)."""
    import builtins
    import errno
    import io
    import os

    root = str(root)
    real_open, real_mkdir, real_builtin_open = os.open, os.mkdir, builtins.open

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    def guarded_open(path, flags, *a, **k):
        if str(path).startswith(root) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_open(path, flags, *a, **k)

    def guarded_mkdir(path, *a, **k):
        if str(path).startswith(root):
            refuse(path)
        return real_mkdir(path, *a, **k)

    def guarded_builtin_open(file, mode="r", *a, **k):
        if str(file).startswith(root) and any(c in mode for c in "wax+"):
            refuse(file)
        return real_builtin_open(file, mode, *a, **k)

    monkeypatch.setattr(os, "open", guarded_open)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)
    monkeypatch.setattr(builtins, "open", guarded_builtin_open)
    monkeypatch.setattr(io, "open", guarded_builtin_open)


def test_read_only_location_is_one_line(scene, tmp_path, capsys, monkeypatch):
    run = _run_from_points(scene, tmp_path / "run")
    seg = _segmented_ply(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    _read_only(monkeypatch, ro)
    commands = [("build", scene, "--out", ro / "run", "--iterations", "2", *FAST),
                ("synth", ro / "scene", "--views", "2", "--test-views", "1", "--size", "16x12"),
                ("render", run.path, "--out", ro / "renders"),
                ("edit", seg, "--delete", "0", "--out", ro / "e.ply"),
                ("export", run.gaussians_path, "--out", ro / "e.splat")]
    for args in commands:
        rc, err = _cli(capsys, *args)
        line = _one_line(err)
        assert rc == 1 and "read-only file system" in line and str(ro) in line, line
    assert list(ro.iterdir()) == []


def _no_space_for(monkeypatch, *names):
    """Make the fsync of an atomic write fail with ENOSPC when the file's target name contains one of `names`."""
    import errno
    import os

    real_fsync = os.fsync

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if any(n in path for n in names):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_full_disk_is_one_line_and_leaves_nothing_half_written(scene, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        _no_space_for(m, "config.json")
        rc, err = _cli(capsys, "build", scene, "--out", run, "--iterations", "4", *FAST)
        assert rc == 1 and "no space left" in _one_line(err) and not run.exists()
    with monkeypatch.context() as m:
        _no_space_for(m, "ckpt_")
        rc, err = _cli(capsys, "build", scene, "--out", run, "--iterations", "4", *FAST)
        assert rc == 1 and "no space left" in _one_line(err) and "ckpt_" in err and not run.exists()
    with monkeypatch.context() as m:
        _no_space_for(m, "gaussians.ply")
        rc, err = _cli(capsys, "build", scene, "--out", run, "--iterations", "4", *FAST)
        assert rc == 1 and "no space left" in _one_line(err)
    assert not (run / "gaussians.ply").exists() and not list(run.rglob("*.tmp")) and not list(run.glob(".*partial"))
    assert _cli(capsys, "build", "--resume", run)[0] == 0  # the checkpoints were kept: nothing lost
    with monkeypatch.context() as m:
        _no_space_for(m, "edited.ply")
        rc, err = _cli(capsys, "edit", _segmented_ply(tmp_path), "--delete", "0", "--out", tmp_path / "edited.ply")
        assert rc == 1 and "no space left" in _one_line(err) and "edited.ply" in err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".edited")) == []
    assert not (tmp_path / "edited.ply").exists()


def test_a_folder_in_the_way_is_one_line(scene, tmp_path, capsys):
    run = _run_from_points(scene, tmp_path / "run")
    (tmp_path / "dir.ply").mkdir()
    rc, err = _cli(capsys, "edit", _segmented_ply(tmp_path), "--delete", "0", "--out", tmp_path / "dir.ply", "--force")
    assert rc == 1 and "a folder is in the way" in _one_line(err)
    (tmp_path / "file").write_text("x")
    rc, err = _cli(capsys, "export", run.gaussians_path, "--out", tmp_path / "file" / "x.ply")
    assert rc == 1 and "is a file, not a folder" in _one_line(err)
    rc, err = _cli(capsys, "build", scene, "--out", tmp_path / "file", *FAST)
    assert rc == 1 and "a file is in the way" in _one_line(err)


def test_synth_folders_follow_the_umask(tmp_path, capsys):
    import os
    import stat

    old = os.umask(0o022)
    try:
        rc, err = _cli(capsys, "synth", tmp_path / "scene", "--views", "2", "--test-views", "1", "--size", "16x12")
    finally:
        os.umask(old)
    assert rc == 0, err
    for d in [tmp_path / "scene", *(p for p in (tmp_path / "scene").rglob("*") if p.is_dir())]:
        assert stat.S_IMODE(d.stat().st_mode) == 0o755, d


def test_demo_script_stops_on_a_stopped_stage_and_resumes_it(tmp_path):
    """scripts/demo.sh with a stand-in `coseg` whose first build is stopped by Ctrl-C (exit 130)."""
    import os
    import subprocess
    from pathlib import Path

    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls.txt"
    (venv / "bin" / "coseg").write_text(f"""#!/usr/bin/env bash
echo "$*" >> {calls}
case "$1" in
  synth) mkdir -p "$2" && touch "$2/transforms_train.json" ;;
  build)
    if [ "$2" = --resume ]; then touch "$3/gaussians.ply"
    else mkdir -p "$4/checkpoints" && touch "$4/checkpoints/ckpt_0000555.pt" && exit 130; fi ;;
  segment) touch "$2/segmented.ply" ;;
esac
""")
    (venv / "bin" / "coseg-studio").write_text("#!/usr/bin/env bash\nexit 0\n")
    for exe in ("coseg", "coseg-studio"):
        (venv / "bin" / exe).chmod(0o755)
    script = Path(__file__).resolve().parents[1] / "scripts" / "demo.sh"
    env = {**os.environ, "COSEG_DEMO_SETUP": "0", "COSEG_VENV": str(venv), "COSEG_DEMO_DIR": str(tmp_path / "demo"),
           "DISPLAY": ":stand-in"}
    first = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert first.returncode == EXIT_STOPPED, first.stderr
    assert [c.split()[0] for c in calls.read_text().splitlines()] == ["synth", "info", "build"]  # no segment
    calls.unlink()
    second = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    ran = calls.read_text().splitlines()
    assert ran[1] == f"build --resume {tmp_path / 'demo' / 'run'}" and [c.split()[0] for c in ran[2:]] == \
        ["segment", "eval", "render"]


def test_numeric_edit_and_studio_options_are_checked(tmp_path, capsys):
    from app.main import parse_args

    seg = _segmented_ply(tmp_path)
    for args, needle in ((["--split", "0", "-1"], "--split 0 -1: the radius must be positive"),
                         (["--select", "sphere:0,0,0,0", "--assign", "new"], "the radius must be positive")):
        rc, err = _cli(capsys, "edit", seg, *args, "--out", tmp_path / "o.ply")
        assert rc == 1 and needle in _one_line(err)
    for argv, needle in ((["random:0"], "random:0"), (["random:abc"], "random:abc"), (["--frames", "0"], "--frames 0"),
                         (["--upsample", "-5"], "--upsample -5"), (["--camera", "-1"], "--camera -1")):
        with pytest.raises(SystemExit, match=needle):
            parse_args(argv)
