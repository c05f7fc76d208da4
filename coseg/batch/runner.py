"""Running a batch: every scene's stages in order, scenes in parallel, on Ray or one after another.

Each scene's remaining stages are planned from its run folder with the same
`coseg.pipeline` planning as ``coseg run --resume`` (finished stages are
skipped, a stopped one resumes from its checkpoint). Each stage is a task
(`coseg.batch.task.run_stage`) with a resource request; a scene's next stage
is submitted when its previous one is done, so scenes share the workers and
a scene's failure stops only that scene. A Ray task whose worker is lost is
retried (``max_retries``) and resumes from the stage's last checkpoint.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from coseg.batch.results import scene_row, write_tables
from coseg.batch.scenes import BatchScene
from coseg.batch.task import StageOutcome, run_stage
from coseg.errors import CosegError, InputError

log = logging.getLogger(__name__)

#: `coseg run` options a batch sets itself, per stage.
_RESERVED = ("--out", "--stages", "--resume", "--overwrite")


@dataclass
class BatchConfig:
    """Settings of one `coseg batch` command."""

    out: Path
    """Folder of the run folders (one per scene) and the results tables."""
    ray: str = "local"
    """"local" (an in-process Ray sized to this machine), "auto" or an address, or "off" (sequential)."""
    options: tuple[str, ...] = ()
    """`coseg run` options of every scene (a scene's own options come after them)."""
    cpus_per_task: int = 1
    """CPUs a stage task asks for; also the numba / OpenMP threads of its process."""
    memory_gb: float = 2.0
    """Memory a stage task asks Ray for (scheduling only), GB."""
    gpus_per_task: float = 0.0
    """GPUs a stage task asks for (set it when the scenes build with a CUDA backend)."""
    retries: int = 2
    """Times Ray retries a stage whose worker was lost."""
    num_cpus: int | None = None
    """CPUs of the local Ray (None: this machine's)."""

    def __post_init__(self) -> None:
        if self.cpus_per_task < 1:
            raise InputError(f"--cpus-per-task {self.cpus_per_task}: must be at least 1")
        if not self.memory_gb > 0:
            raise InputError(f"--memory-gb {self.memory_gb}: must be > 0")
        if not self.gpus_per_task >= 0:
            raise InputError(f"--gpus-per-task {self.gpus_per_task}: must be >= 0")
        if self.retries < 0:
            raise InputError(f"--retries {self.retries}: must be >= 0")


def plan_scene(scene: BatchScene, config: BatchConfig) -> list[str]:
    """The stages the scene still needs, in order (`coseg run --resume` planning).

    Raises:
        InputError: the scene's options are not valid `coseg run` options (one line).
    """
    from coseg.cli import build_parser
    from coseg.cli.segment import pipeline_from_args

    options = list(config.options) + list(scene.options)
    for word in options:
        if word.split("=", 1)[0] in _RESERVED:
            raise InputError(f"{word}: coseg batch sets --out, --stages, --resume and --overwrite itself")
    argv = ["run", str(scene.path), "--out", str(config.out / scene.name), "--resume"] + options
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = build_parser().parse_args(argv)
    except SystemExit:
        lines = [line for line in errors.getvalue().splitlines() if line.strip()]
        raise InputError(lines[-1].replace("coseg run: error: ", "") if lines else "bad options") from None
    pipeline = pipeline_from_args(args)
    pipeline.request.strict_resume = False
    return [stage.name for stage in pipeline.plan()]


class _Sequential:
    """Runs each task at once, here (no Ray); a stage gets every CPU of the machine."""

    def __init__(self) -> None:
        self.done: list[tuple[Any, dict]] = []
        self.threads = os.cpu_count() or 1

    def submit(self, key: Any, kwargs: dict) -> None:
        try:
            outcome = run_stage(**kwargs)
        except (OSError, subprocess.SubprocessError) as e:  # e.g. its log or run folder cannot be written
            outcome = raised_outcome(kwargs, e)
        self.done.append((key, outcome))

    def next(self) -> tuple[Any, dict]:
        return self.done.pop(0)

    def close(self) -> None:
        pass


class _Ray:
    """Stage tasks on Ray, with resource requests and retries of lost workers."""

    def __init__(self, config: BatchConfig) -> None:
        import ray

        self.ray = ray
        if config.ray == "local":
            ray.init(num_cpus=config.num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False, object_store_memory=100 * 1024 ** 2)
        else:
            ray.init(address=config.ray, log_to_driver=False)
        self.remote = ray.remote(run_stage).options(
            num_cpus=config.cpus_per_task, memory=int(config.memory_gb * 1024 ** 3),
            num_gpus=config.gpus_per_task, max_retries=config.retries, retry_exceptions=False)
        self.pending: dict[Any, Any] = {}
        self.threads = config.cpus_per_task
        self.retries = config.retries

    def submit(self, key: Any, kwargs: dict) -> None:
        self.pending[self.remote.remote(**kwargs)] = (key, kwargs)

    def next(self) -> tuple[Any, dict]:
        ready, _ = self.ray.wait(list(self.pending), num_returns=1)
        key, kwargs = self.pending.pop(ready[0])
        try:
            return key, self.ray.get(ready[0])
        except self.ray.exceptions.RayError as e:  # retries used up, or the task could not run
            return key, given_up_outcome(kwargs, e, self.retries)

    def close(self) -> None:
        self.ray.shutdown()


def given_up_outcome(task: dict, error: Exception, retries: int) -> dict:
    """The failed outcome (`StageOutcome.as_dict`) of a stage task Ray gave up on, with a one-line reason.

    Args:
        task: the task's `run_stage` arguments.
        error: the `ray.exceptions.RayError` that ``ray.get`` raised.
        retries: the retries Ray had for a lost worker (`BatchConfig.retries`).
    """
    from ray.exceptions import LocalRayletDiedError, NodeDiedError, OutOfMemoryError, RayTaskError, WorkerCrashedError

    if isinstance(error, RayTaskError):  # run_stage itself raised: not retried (retry_exceptions=False)
        return raised_outcome(task, error.cause if error.cause is not None else error)
    if isinstance(error, (WorkerCrashedError, NodeDiedError, LocalRayletDiedError, OutOfMemoryError)):
        lost = 1 + retries
        why = f"its worker was lost {lost} time{'s' if lost > 1 else ''}, --retries {retries} ({_first_line(error)})"
    else:
        why = f"Ray could not run it ({type(error).__name__}: {_first_line(error)})"
    return StageOutcome(task["name"], task["stage"], "failed", 0.0, 0.0, 0.0, f"{task['stage']}: {why}").as_dict()


def raised_outcome(task: dict, error: BaseException) -> dict:
    """The failed outcome of a stage task whose own code raised (on Ray or in the sequential runner).

    Args:
        task: the task's `run_stage` arguments.
        error: what it raised.
    """
    why = f"the task raised {type(error).__name__}: {_first_line(error)}"
    return StageOutcome(task["name"], task["stage"], "failed", 0.0, 0.0, 0.0, f"{task['stage']}: {why}").as_dict()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def executor(config: BatchConfig):
    """Ray as configured, or the sequential runner when Ray is off or not installed (said in the log)."""
    if config.ray == "off":
        return _Sequential()
    try:
        import ray  # noqa: F401
    except ImportError:
        log.warning("ray is not installed (pip install 'coseg-studio[cluster]'): running the scenes one "
                    "after another on this machine")
        return _Sequential()
    try:
        return _Ray(config)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise CosegError(f"--ray {config.ray}: cannot start or join Ray ({str(e).splitlines()[0][:200]})") from e


def run_batch(scenes: list[BatchScene], config: BatchConfig,
              report: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run every scene's remaining stages; returns the results rows (also written as tables).

    Args:
        scenes: the batch's scenes (`coseg.batch.scenes.expand_scenes`).
        config: where and how to run.
        report: receives one progress line per finished stage and per scene.
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    state = {s.name: {"scene": s, "stages": [], "status": "waiting", "error": "", "peak": None} for s in scenes}
    for name, st in state.items():
        try:
            st["stages"] = plan_scene(st["scene"], config)
        except CosegError as e:
            st["status"], st["error"] = "failed", str(e)
            report(f"{name}: failed before its first stage: {e}")
        else:
            if not st["stages"]:
                st["status"] = "done"
                report(f"{name}: every stage has finished already")
    runner = None
    try:
        todo = [n for n, st in state.items() if st["status"] == "waiting"]
        if todo:
            runner = executor(config)
        for name in todo:
            state[name]["status"] = "running"
            _submit(runner, state[name], config)
        running = len(todo)
        while running:
            name, outcome = runner.next()
            st = state[name]
            st["peak"] = max(st["peak"] or 0.0, outcome.get("peak_rss_mb") or 0.0)
            stage = st["stages"].pop(0)
            if outcome["status"] == "done" and st["stages"]:
                report(f"{name}: {stage} done in {outcome['seconds']:.0f} s; next {st['stages'][0]}")
                _submit(runner, st, config)
            else:
                running -= 1
                st["status"], st["error"] = outcome["status"], outcome.get("error", "")
                finished = sum(s["status"] not in ("waiting", "running") for s in state.values())
                what = f"{stage} done in {outcome['seconds']:.0f} s" if outcome["status"] == "done" else st["error"]
                report(f"{name}: {outcome['status']} ({what}) [{finished}/{len(state)} scenes]")
            _write(out, state)
    finally:
        if runner is not None:
            runner.close()
    return _write(out, state)


def _submit(runner, st: dict, config: BatchConfig) -> None:
    scene: BatchScene = st["scene"]
    runner.submit(scene.name, dict(
        name=scene.name, scene=str(scene.path), run=str(config.out / scene.name), stage=st["stages"][0],
        options=tuple(config.options) + tuple(scene.options), threads=runner.threads,
        log_path=str(config.out / "logs" / f"{scene.name}.log")))


def _write(out: Path, state: dict) -> list[dict[str, Any]]:
    rows = [scene_row(name, out / name, st["status"], st["peak"], st["error"]) for name, st in state.items()]
    write_tables(out, rows)
    return rows
