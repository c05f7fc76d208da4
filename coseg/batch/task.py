"""One stage of one scene, as a `coseg batch` task: `coseg run ... --stages NAME` in a child process.

A child process per stage keeps a crash of one scene's stage (or of its
numba code) away from the task runner, gives that stage's own peak memory
and CPU time (`os.wait4`), and keeps every stage the same command a user
would type (its data-safety checks, one-line errors, checkpoints and
``--resume`` included). The child dies with the task runner (Linux
``PR_SET_PDEATHSIG``) with SIGINT, its polite stop: it writes a checkpoint
and exits, so a lost Ray worker's retry resumes from there.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from coseg.cli import EXIT_STOPPED


@dataclass
class StageOutcome:
    """What one stage task did."""

    scene: str
    """The scene's name in the batch."""
    stage: str
    """The pipeline stage ("build", "segment", "eval", ...)."""
    status: str
    """"done", "stopped" (exit 130, checkpoint kept) or "failed"."""
    seconds: float
    """Wall time of the child process."""
    cpu_s: float
    """User + system CPU time of the child process."""
    peak_rss_mb: float
    """The child's peak resident memory."""
    error: str = ""
    """The one-line error of a failed stage."""

    def as_dict(self) -> dict:
        return asdict(self)


def stage_command(scene: Path, run: Path, stage: str, options: tuple[str, ...]) -> list[str]:
    """The `coseg run` command line of one stage (``--resume`` once the run folder exists)."""
    cmd = [sys.executable, "-m", "coseg", "run", str(scene), "--out", str(run), "--stages", stage]
    if (run / "config.json").exists():
        cmd.append("--resume")
    return cmd + list(options)


def run_stage(name: str, scene: str, run: str, stage: str, options: tuple[str, ...], threads: int,
              log_path: str) -> dict:
    """Run one stage of one scene in a child process and report it (`StageOutcome.as_dict`).

    Args:
        name: the scene's name in the batch.
        scene, run: the scene folder and its run folder.
        stage: the stage to run.
        options: `coseg run` options of this scene.
        threads: numba / OpenMP threads of the child (the CPUs the task was given).
        log_path: the child's output is appended here.
    """
    run_path = Path(run)
    _wait_for_the_run(run_path)  # a lost attempt's child may still be writing its checkpoint
    cmd = stage_command(Path(scene), run_path, stage, options)
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "TQDM_MININTERVAL": "10"}
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=env, preexec_fn=_stop_with_parent)
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except KeyboardInterrupt:  # Ctrl-C reached the child too: let it write its checkpoint
            os.wait4(child.pid, 0)
            child.returncode = EXIT_STOPPED
            raise
    child.returncode = rc = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    outcome = StageOutcome(name, stage, "done", round(seconds, 2), round(usage.ru_utime + usage.ru_stime, 2),
                           round(usage.ru_maxrss / 1024.0, 1))
    if rc == EXIT_STOPPED:
        outcome.status, outcome.error = "stopped", f"{stage} stopped; its checkpoint is kept (re-run to resume)"
    elif rc < 0:
        outcome.status, outcome.error = "failed", f"{stage}: killed by signal {-rc} (see {log_path})"
    elif rc != 0:
        outcome.status, outcome.error = "failed", _error_line(Path(log_path), stage)
    return outcome.as_dict()


def _stop_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG


def _wait_for_the_run(run: Path, timeout_s: float = 600.0) -> None:
    """Wait until no process holds the run's lock (`coseg.run.RunDir.lock`)."""
    lock = run / ".lock"
    if not lock.exists():
        return
    deadline = time.monotonic() + timeout_s
    with open(lock, "a") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # the child then says which process holds it, in one line
                time.sleep(0.2)


def _error_line(log_path: Path, stage: str) -> str:
    """The child's one-line error (its last ``coseg ...: error:`` or usage line)."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in reversed(lines):
        if ": error: " in line:
            return line.split(": error: ", 1)[1].strip()
    tail = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return f"{stage} failed: {tail[:300]}" if tail else f"{stage} failed (see {log_path})"
