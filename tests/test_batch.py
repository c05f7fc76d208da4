"""`coseg batch`: scenes and manifests, planning from run folders, Ray and sequential runs, failures, retries."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from coseg.batch import BatchConfig, BatchScene, expand_scenes, plan_scene, run_batch
from coseg.batch.results import read_rows
from coseg.errors import InputError

RUN_OPTIONS = ("--iterations", "40", "--set", "init_max_points=200", "--set", "checkpoint_every=10",
               "--set", "max_sh_degree=0", "--seg-iterations", "10", "--extractor", "appearance",
               "--spatial-weights", "random")
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
# Each stage is a `coseg run` process (about 6 s CPU of imports here): the Ray end-to-end runs are long checks.



@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Three tiny scenes (two the same scene under two names) and one with a broken transforms.json."""
    from coseg.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("batch")
    generate(root / "a", SynthConfig(views=6, test_views=2, width=48, height=36, points=3000, seed=2))
    generate(root / "b", SynthConfig(views=6, test_views=2, width=48, height=36, points=3000, seed=3))
    shutil.copytree(root / "a", root / "c")
    shutil.copytree(root / "a", root / "broken")
    (root / "broken" / "transforms_train.json").write_text("{ not json")
    return root


def _stamps(folder: Path) -> dict:
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_scenes_from_folders_globs_and_a_manifest(tmp_path):
    for name in ("x", "y", "z"):
        (tmp_path / "scenes" / name).mkdir(parents=True)
    manifest = tmp_path / "list.txt"
    manifest.write_text("# scenes\nscenes/x --iterations 5   # short\n\n'scenes/y' --name why --field label-vote\n")
    got = expand_scenes([str(tmp_path / "scenes" / "z"), str(manifest)])
    assert got == [BatchScene("z", tmp_path / "scenes" / "z"),
                   BatchScene("x", tmp_path / "scenes/x", ("--iterations", "5")),
                   BatchScene("why", tmp_path / "scenes/y", ("--field", "label-vote"))]
    assert [s.name for s in expand_scenes([str(tmp_path / "scenes" / "*")])] == ["x", "y", "z"]
    with pytest.raises(InputError, match="matches no scene folder"):
        expand_scenes([str(tmp_path / "nothing*")])
    with pytest.raises(InputError, match="share the run folder 'x'"):
        expand_scenes([str(tmp_path / "scenes" / "x"), str(manifest)])
    (tmp_path / "bad.txt").write_text("scenes/x --name\n")
    with pytest.raises(InputError, match=r"bad.txt:1: --name needs a folder name"):
        expand_scenes([str(tmp_path / "bad.txt")])
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(InputError, match="lists no scene"):
        expand_scenes([str(tmp_path / "empty.txt")])


def test_plan_follows_the_run_folder_and_checks_the_options(scenes, tmp_path):
    config = BatchConfig(out=tmp_path, options=RUN_OPTIONS)
    scene = BatchScene("a", scenes / "a")
    assert plan_scene(scene, config) == ["build", "segment", "eval"]
    with pytest.raises(InputError, match="--seg-iterations: invalid int value"):
        plan_scene(BatchScene("a", scenes / "a", ("--seg-iterations", "many")), config)
    with pytest.raises(InputError, match="sets --out, --stages, --resume and --overwrite itself"):
        plan_scene(BatchScene("a", scenes / "a", ("--overwrite",)), config)
    with pytest.raises(InputError, match="--cpus-per-task 0"):
        BatchConfig(out=tmp_path, cpus_per_task=0)


def test_sequential_batch_runs_the_stages_and_a_rerun_does_nothing(scenes, tmp_path, monkeypatch):
    out = tmp_path / "out"
    lines = []
    rows = run_batch([BatchScene("a", scenes / "a")], BatchConfig(out=out, ray="off", options=RUN_OPTIONS),
                     report=lines.append)
    assert [r["status"] for r in rows] == ["done"]
    metrics = json.loads((out / "a" / "metrics.json").read_text())
    assert rows[0]["psnr"] == metrics["building"]["psnr"] and rows[0]["miou"] == metrics["segmentation"]["miou"]
    assert rows[0]["peak_rss_mb"] >= metrics["segmentation"]["peak_rss_mb"] > 50
    assert (out / "a" / "segmented.ply").is_file()
    assert [r["scene"] for r in read_rows(out / "results.csv")] == ["a", "mean"]
    before = _stamps(out / "a")
    lines.clear()
    rows = run_batch([BatchScene("a", scenes / "a")], BatchConfig(out=out, ray="off", options=RUN_OPTIONS),
                     report=lines.append)
    assert lines == ["a: every stage has finished already"]
    assert rows[0]["status"] == "done" and _stamps(out / "a") == before


@pytest.mark.slow
@needs_ray
def test_ray_batch_runs_scenes_in_parallel_isolates_a_broken_one_and_reruns_nothing(scenes, tmp_path):
    out = tmp_path / "out"
    batch = [BatchScene(n, scenes / n) for n in ("a", "b", "c", "broken")]
    config = BatchConfig(out=out, options=RUN_OPTIONS, num_cpus=2)
    rows = {r["scene"]: r for r in run_batch(batch, config, report=lambda line: None)}
    assert [rows[n]["status"] for n in ("a", "b", "c", "broken")] == ["done", "done", "done", "failed"]
    assert "transforms_train.json" in rows["broken"]["error"] and "\n" not in rows["broken"]["error"]
    for name in ("a", "b", "c"):
        assert (out / name / "segmented.ply").is_file()
        assert rows[name]["psnr"] == json.loads((out / name / "metrics.json").read_text())["building"]["psnr"]
    table = {r["scene"]: r for r in read_rows(out / "results.csv")}
    assert table["mean"]["status"] == "3/4 done"
    assert float(table["mean"]["psnr"]) == pytest.approx(np.mean([rows[n]["psnr"] for n in "abc"]), abs=1e-3)
    assert (out / "results.md").read_text().count("\n") == 2 + 5
    before = {n: _stamps(out / n) for n in "abc"}
    logs = {n: (out / "logs" / f"{n}.log").read_text() for n in "abc"}
    rows = {r["scene"]: r for r in run_batch(batch[:3], config, report=lambda line: None)}
    assert all(rows[n]["status"] == "done" for n in "abc")
    assert {n: _stamps(out / n) for n in "abc"} == before
    assert {n: (out / "logs" / f"{n}.log").read_text() for n in "abc"} == logs


def _build_children_of(run: Path) -> list[int]:
    """pids of the `coseg run --stages build` processes writing `run`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--stages" in cmd and b"build" in cmd and str(run).encode() in cmd:
            pids.append(int(entry.name))
    return pids


def _build_child_of(run: Path) -> int | None:
    """pid of the `coseg run --stages build` process writing `run`, if one runs."""
    return next(iter(_build_children_of(run)), None)


def _parent(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.slow
@needs_ray
def test_a_lost_worker_is_retried_and_the_build_matches_an_uninterrupted_one(scenes, tmp_path):
    from coseg.io.ply import read_gaussians_ply

    out = tmp_path / "out"
    options = RUN_OPTIONS + ("--iterations", "150", "--set", "checkpoint_every=20")  # the last ones count
    config = BatchConfig(out=out, options=options, num_cpus=2)
    batch = [BatchScene("a", scenes / "a"), BatchScene("c", scenes / "c")]
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(rows=run_batch(batch, config, report=lambda line: None)))
    thread.start()
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and time.monotonic() < deadline and thread.is_alive():
        child = _build_child_of(out / "c")
        if child is not None and list((out / "c" / "checkpoints").glob("ckpt_*.pt")):
            killed = _parent(child)
            os.kill(killed, signal.SIGKILL)  # the Ray worker running c's build task
        time.sleep(0.05)
    thread.join(timeout=600)
    assert killed is not None, "the build finished before the test could stop its worker"
    assert [r["status"] for r in result["rows"]] == ["done", "done"]
    log = (out / "logs" / "c.log").read_text()
    assert log.count("--stages build") == 2 and "--resume" in log.split("--stages build")[2].splitlines()[0]
    a, c = read_gaussians_ply(out / "a" / "gaussians.ply"), read_gaussians_ply(out / "c" / "gaussians.ply")
    assert len(a) == len(c)
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest"):
        np.testing.assert_array_equal(getattr(a, name), getattr(c, name))


def test_run_stages_names_its_stages_in_one_line(scenes, tmp_path, capsys):
    from coseg.cli import main
    from coseg.pipeline import STAGES

    rc = main(["run", str(scenes / "a"), "--out", str(tmp_path / "r"), "--stages", "build,paint"])
    err = capsys.readouterr().err
    assert rc == 1 and err.strip() == f"coseg run: error: --stages build,paint: stages are {', '.join(STAGES)}"
    assert not (tmp_path / "r").exists()


def test_results_csv_keeps_the_figures_and_the_mean_of_every_row(tmp_path):
    from coseg.batch.results import write_tables

    (tmp_path / "results.csv").write_text("scene,status,psnr\nold,done,30.5\n")
    write_tables(tmp_path, [{"scene": "a", "status": "done", "psnr": 10.737209711373007, "error": ""},
                            {"scene": "b", "status": "failed", "psnr": None, "error": "x: bad"}])
    rows = {r["scene"]: r for r in read_rows(tmp_path / "results.csv")}
    assert list(rows) == ["old", "a", "b", "mean"]  # an earlier batch's row is kept
    assert float(rows["a"]["psnr"]) == pytest.approx(10.737209711373007, abs=1e-4)
    assert float(rows["mean"]["psnr"]) == pytest.approx((30.5 + 10.737209711373007) / 2, abs=1e-4)
    assert rows["mean"]["status"] == "2/3 done" and rows["b"]["error"] == "x: bad"


class _GivesUpOnC:
    """Stands in for the Ray runner: a's stage tasks finish; Ray gives up on c's build, its worker lost."""

    threads = 1

    def __init__(self, error: Exception) -> None:
        self.error, self.submitted, self.outcomes, self.closed = error, [], [], False

    def submit(self, key, kwargs: dict) -> None:
        from coseg.batch.runner import given_up_outcome
        from coseg.batch.task import StageOutcome

        self.submitted.append((key, kwargs["stage"]))
        done = StageOutcome(key, kwargs["stage"], "done", 1.0, 1.0, 80.0).as_dict()
        self.outcomes.append((key, given_up_outcome(kwargs, self.error, 2) if key == "c" else done))

    def next(self):
        return self.outcomes.pop(0)

    def close(self) -> None:
        self.closed = True


def test_a_sequential_stage_that_raises_fails_its_scene_only(scenes, tmp_path, monkeypatch):
    from coseg.batch import runner
    from coseg.batch.task import StageOutcome

    ran = []

    def fake_stage(**task):
        ran.append((task["name"], task["stage"]))
        if task["name"] == "c":
            raise OSError(28, "No space left on device", task["log_path"])
        return StageOutcome(task["name"], task["stage"], "done", 1.0, 1.0, 10.0).as_dict()

    monkeypatch.setattr(runner, "run_stage", fake_stage)
    out, lines = tmp_path / "out", []
    rows = run_batch([BatchScene("c", scenes / "c"), BatchScene("a", scenes / "a")],
                     BatchConfig(out=out, ray="off", options=RUN_OPTIONS), report=lines.append)
    assert [(r["scene"], r["status"]) for r in rows] == [("c", "failed"), ("a", "done")]
    assert rows[0]["error"] == (f"build: the task raised OSError: [Errno 28] No space left on device: "
                                f"'{out / 'logs' / 'c.log'}'")
    assert ran == [("c", "build"), ("a", "build"), ("a", "segment"), ("a", "eval")]
    assert lines[0] == f"c: failed ({rows[0]['error']}) [1/2 scenes]"


@needs_ray
def test_a_stage_whose_worker_is_lost_past_the_retries_fails_its_scene_only(scenes, tmp_path, monkeypatch):
    from ray.exceptions import WorkerCrashedError

    from coseg.batch import runner

    fake = _GivesUpOnC(WorkerCrashedError())
    monkeypatch.setattr(runner, "executor", lambda config: fake)
    out, lines = tmp_path / "out", []
    rows = run_batch([BatchScene("a", scenes / "a"), BatchScene("c", scenes / "c")],
                     BatchConfig(out=out, options=RUN_OPTIONS, retries=2), report=lines.append)
    error = "build: its worker was lost 3 times, --retries 2 (The worker died unexpectedly while executing this task."
    assert [(r["scene"], r["status"]) for r in rows] == [("a", "done"), ("c", "failed")]
    assert rows[1]["error"].startswith(error) and "\n" not in rows[1]["error"]
    assert fake.submitted == [("a", "build"), ("c", "build"), ("a", "segment"), ("a", "eval")] and fake.closed
    assert [line for line in lines if line.startswith("c:")] == [f"c: failed ({rows[1]['error']}) [1/2 scenes]"]
    table = {r["scene"]: r for r in read_rows(out / "results.csv")}
    assert table["c"]["status"] == "failed" and table["c"]["error"] == rows[1]["error"]
    assert table["mean"]["status"] == "1/2 done"


@needs_ray
def test_a_stage_task_that_raised_or_could_not_run_is_not_called_lost():
    from ray.exceptions import RayTaskError, TaskUnschedulableError

    from coseg.batch.runner import given_up_outcome

    task = {"name": "c", "stage": "segment"}
    raised = RayTaskError("run_stage", "Traceback ...", OSError(28, "No space left on device"))
    assert given_up_outcome(task, raised, 2)["error"] == (
        "segment: the task raised OSError: [Errno 28] No space left on device")
    outcome = given_up_outcome(task, TaskUnschedulableError("no node has 1 GPU\nmore"), 0)
    assert outcome["error"] == ("segment: Ray could not run it (TaskUnschedulableError: The task is not schedulable: "
                                "no node has 1 GPU)")
    assert outcome["status"] == "failed" and outcome["scene"] == "c"


@pytest.mark.slow
@needs_ray
def test_a_worker_lost_more_often_than_the_retries_fails_that_scene_and_the_others_finish(scenes, tmp_path):
    out = tmp_path / "out"
    config = BatchConfig(out=out, options=RUN_OPTIONS, num_cpus=2, retries=1)
    batch = [BatchScene("a", scenes / "a"), BatchScene("c", scenes / "c")]
    lines: list[str] = []
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(rows=run_batch(batch, config, report=lines.append)))
    thread.start()
    seen: set[int] = set()
    deadline = time.monotonic() + 300
    while len(seen) < 2 and time.monotonic() < deadline and thread.is_alive():
        for child in set(_build_children_of(out / "c")) - seen:  # a lost attempt's child may still be saving
            seen.add(child)
            os.kill(_parent(child), signal.SIGKILL)  # the Ray worker running c's build task
        time.sleep(0.05)
    thread.join(timeout=600)
    assert len(seen) == 2, "c's build ended before both of its attempts could be stopped"
    rows = {r["scene"]: r for r in result["rows"]}
    assert rows["a"]["status"] == "done" and (out / "a" / "segmented.ply").is_file()
    assert rows["c"]["status"] == "failed" and rows["c"]["error"].startswith("build: its worker was lost 2 times")
    assert [line for line in lines if line.startswith("c:")] == [f"c: failed ({rows['c']['error']}) [1/2 scenes]"]
    log = (out / "logs" / "c.log").read_text()
    assert log.count("--stages build") == 2 and "--stages segment" not in log
    assert {r["scene"]: r["status"] for r in read_rows(out / "results.csv")}["c"] == "failed"
