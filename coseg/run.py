"""Run folders: the outputs of one scene's processing.

A run folder holds ``config.json`` (written first, every setting used, the
run-format version), ``gaussians.ply`` (building stage), ``metrics.json``
(one section per stage, merged, never clobbered), ``checkpoints/`` (resume
points) and ``log.txt``. Every file is written atomically (temp + rename), so
a crash or kill leaves a folder that can still be inspected and resumed.

Stage results follow the data-safety contract (docs/data-safety.md): a
stage's result files (`STAGE_FILES`) exist only once the stage has completed;
running a stage again needs ``overwrite`` and keeps what it replaces in
``previous/<stage>-<time>/``; a stopped or failed stage leaves the previous
result in place (`RunDir.start_stage`, `RunDir.writing_results`).

Sections of ``config.json``: ``format_version``, ``coseg_version``,
``created``, ``scene`` (path and the settings it is read with:
`coseg.scene_settings.ReadSettings`, optionally ``cache``) and one section per stage
(``building``, ``segmentation``, ...). `RunDir.update_config` merges a section.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from coseg import RUN_FORMAT_VERSION, __version__
from coseg.errors import CosegError, InputError
from coseg.io.atomic import write_json_atomic
from coseg.io.safety import os_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageFiles:
    """What one stage owns in a run folder (paths relative to the run)."""

    results: tuple[str, ...]
    """The stage's result files; they exist only once the stage has completed."""
    checkpoints: tuple[str, ...] = ()
    """Glob patterns of the stage's resume points."""
    derived: tuple[str, ...] = ()
    """Stages whose results are computed from this one's: replacing it retires theirs."""
    extras: tuple[str, ...] = ()
    """Files the stage may write beside its results (not required; put in place, kept and retired with them)."""

    @property
    def owned(self) -> tuple[str, ...]:
        """Results and extras."""
        return self.results + self.extras


#: Folder of a run that holds the scene its poses stage recovered from bare photos.
POSES_SCENE = "scene"

#: Stage (= its config.json / metrics.json section) -> the files it owns. A new
#: stage adds its entry here so that overwrite, backup and resume treat it alike.
STAGE_FILES: dict[str, StageFiles] = {
    # `coseg run PHOTOS`: the cameras recovered from bare photos, a COLMAP scene inside the run.
    "poses": StageFiles((f"{POSES_SCENE}/poses.json",), (), ("building", "segmentation")),
    "building": StageFiles(("gaussians.ply",), ("checkpoints/ckpt_*.pt",), ("segmentation",)),
    "segmentation": StageFiles(("segmented.ply", "segmentation.npz"), ("checkpoints/segment.pt",),
                               extras=("classes.json",)),
}

#: Files a run keeps besides stage results and checkpoints (a run holding only these is unused).
_BOOKKEEPING = {"config.json", "metrics.json", "log.txt", ".lock"}


@dataclass
class StagedResult:
    """Where a stage writes its new result (`RunDir.writing_results`)."""

    dir: Path
    """Write every result file of the stage here, under its final name."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """The stage's metrics.json section, written with ``completed: true`` when the result is in place."""


class RunDir:
    """A run folder on disk (see module docstring).

    Args:
        path: the folder; `create` makes it, `open` checks an existing one.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.created = False
        """True when this object made the folder (`create`): `discard_if_unused` may remove it."""

    # ------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def gaussians_path(self) -> Path:
        return self.path / "gaussians.ply"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    @property
    def previous_dir(self) -> Path:
        """Where replaced stage results are kept (`previous/<stage>-<time>/`)."""
        return self.path / "previous"

    # ------------------------------------------------------------ life cycle
    @classmethod
    def create(cls, path: str | os.PathLike, scene_path: str | os.PathLike | None = None,
               downscale: float = 1.0, overwrite: bool = False,
               reading: dict[str, Any] | None = None) -> "RunDir":
        """Make a new run folder and write its config.json header (or reuse a run with `overwrite`).

        Args:
            path: folder to create; it may exist if empty.
            scene_path: the scene folder the run processes (None for a bare import).
            downscale: working-resolution factor the scene is read with (see `reading`).
            overwrite: reuse a folder that already holds a run of the same scene and
                working resolution: its header and results stay until each stage replaces
                its own (`start_stage`).
            reading: the settings the scene is read with (`coseg.scene.Scene.reading`,
                plus "cache" when not the run's own); they win over `downscale`.

        Raises:
            CosegError: a file or a non-empty non-run folder is in the way, the folder
                holds a run and `overwrite` is False, or it holds a run of another scene.
        """
        run = cls(path)
        reading = {"downscale": float(downscale), **(reading or {})}
        run.check_creatable(scene_path, reading["downscale"], overwrite)
        if run.config_path.exists():
            return cls.open(run.path)
        header = {
            "format_version": RUN_FORMAT_VERSION,
            "coseg_version": __version__,
            "created": _now().isoformat(timespec="seconds"),
            "scene": {"path": None if scene_path is None else str(Path(scene_path).resolve()),
                      **reading},
        }
        existed = run.path.is_dir()
        try:
            with os_errors(run.path, "cannot create the run folder"):
                run.path.mkdir(parents=True, exist_ok=True)
                run.created = True
                write_json_atomic(run.config_path, header)
        except CosegError:
            run.discard_if_unused(keep_folder=existed)
            raise
        return run

    def check_creatable(self, scene_path: str | os.PathLike | None = None, downscale: float = 1.0,
                        overwrite: bool = False) -> None:
        """Raise what `create` with these arguments would raise, changing nothing."""
        if self.path.exists() and not self.path.is_dir():
            raise CosegError(f"{self.path}: exists and is not a folder")
        if not self.config_path.exists():
            if self.path.is_dir() and any(self.path.iterdir()):
                raise CosegError(f"{self.path}: folder is not empty and holds no run; "
                                 f"choose a new or empty folder")
            return
        if not overwrite:
            raise CosegError(f"{self.path}: already holds a run (config.json exists); "
                             f"use --resume to continue it or --overwrite to replace it")
        recorded = self.open(self.path).read_config().get("scene") or {}
        if scene_path is not None and recorded.get("path") is not None:
            new = str(Path(scene_path).resolve())
            if new != recorded["path"] or not math.isclose(float(downscale), float(recorded.get("downscale", 1))):
                raise CosegError(
                    f"{self.path}: holds a run of {recorded['path']} at downscale {recorded.get('downscale', 1)}; "
                    f"--overwrite replaces stage results of the same scene and downscale only: "
                    f"choose another --out for {new} at downscale {downscale}")

    def discard_if_unused(self, keep_folder: bool = False) -> bool:
        """Remove a run folder this process created if no stage wrote anything into it.

        Called when a command fails before its first checkpoint or result, so a
        failed start leaves no half-made run behind. Returns whether it was removed.
        """
        if not self.created or not self.path.is_dir():
            return False
        for p in self.path.rglob("*"):
            if p.is_file() and (p.parent != self.path or p.name not in _BOOKKEEPING):
                return False
        if keep_folder:
            for p in sorted(self.path.iterdir(), reverse=True):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        log.debug("removed the unused run folder %s", self.path)
        return True

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunDir":
        """Open an existing run folder, checking its format version.

        Raises:
            InputError: no config.json, unreadable, or written by another run format.
        """
        run = cls(path)
        if not run.config_path.exists():
            raise InputError(f"{run.path}: not a run folder (no config.json)")
        config = run.read_config()
        version = config.get("format_version")
        if version != RUN_FORMAT_VERSION:
            raise InputError(
                f"{run.config_path}: run format version {version!r} (coseg "
                f"{config.get('coseg_version', '?')}) cannot be read by coseg {__version__}, "
                f"which reads run format {RUN_FORMAT_VERSION}; rebuild the run")
        return run

    # ------------------------------------------------------------ json sections
    def read_config(self) -> dict[str, Any]:
        return _read_json(self.config_path)

    def update_config(self, section: str, values: dict[str, Any]) -> None:
        """Set one section of config.json (replacing that section only)."""
        config = self.read_config()
        config[section] = values
        write_json_atomic(self.config_path, config)

    def read_metrics(self) -> dict[str, Any]:
        return _read_json(self.metrics_path) if self.metrics_path.exists() else {}

    def update_metrics(self, section: str, values: dict[str, Any], replace: bool = False) -> None:
        """Merge `values` into one section of metrics.json (or `replace` that section);
        other sections are kept."""
        metrics = self.read_metrics()
        if replace:
            metrics[section] = dict(values)
        else:
            metrics.setdefault(section, {}).update(values)
        write_json_atomic(self.metrics_path, metrics)

    # ------------------------------------------------------------ stage results
    def has_result(self, stage: str) -> bool:
        """Every result file of `stage` is present."""
        return all((self.path / name).is_file() for name in STAGE_FILES[stage].results)

    def stage_completed(self, stage: str) -> bool:
        """The stage's result is present and its latest attempt completed."""
        return self.has_result(stage) and self.read_metrics().get(stage, {}).get("completed", True) is not False

    def checkpoints_of(self, stage: str) -> list[Path]:
        """The stage's resume points present in the run."""
        return sorted(p for pattern in STAGE_FILES[stage].checkpoints for p in self.path.glob(pattern)
                      if p.is_file())

    def start_stage(self, stage: str, *, overwrite: bool = False, resume: bool = False) -> str:
        """Check that `stage` may start here and prepare the run for it.

        A fresh start over an earlier result needs `overwrite`; that result is kept
        in ``previous/<stage>-<time>/`` (hard links: no copy) and stays in place
        until the new one is complete. The earlier attempt's checkpoints move there
        too, so a fresh start never resumes them.

        Args:
            stage: a key of `STAGE_FILES`.
            overwrite: replace an earlier result or unfinished attempt.
            resume: continue the stage from its checkpoint.

        Returns:
            "fresh", "resume", or "complete" (resume asked but the stage has
            completed: nothing to do).

        Raises:
            CosegError: one line saying what is in the way and which option to use.
        """
        start_as = self.check_stage_start(stage, overwrite=overwrite, resume=resume)
        if start_as != "fresh" or not overwrite:
            return start_as
        checkpoints = self.checkpoints_of(stage)
        kept = [self.path / n for n in STAGE_FILES[stage].owned if (self.path / n).is_file()]
        if kept or checkpoints:
            backup = self.new_backup(stage)
            with os_errors(backup, "cannot keep the previous result"):
                for p in kept:
                    _link_or_copy(p, backup / p.relative_to(self.path))
                for p in checkpoints:
                    dest = backup / p.relative_to(self.path)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(p, dest)
            log.info("%s: the previous %s result is kept in %s", self.path, stage, backup)
        return "fresh"

    def check_stage_start(self, stage: str, *, overwrite: bool = False, resume: bool = False) -> str:
        """What `start_stage` would do, without changing anything (same return and errors)."""
        if resume:
            if self.stage_completed(stage):
                return "complete"
            if not self.checkpoints_of(stage):
                raise InputError(f"{self.path}: no {stage} checkpoint to resume from; "
                                 f"run the stage without --resume to start it")
            return "resume"
        if not overwrite:
            if self.has_result(stage):
                raise CosegError(f"{self.path}: already holds a {stage} result "
                                 f"({', '.join(STAGE_FILES[stage].results)}); use --overwrite to replace it "
                                 f"(the old one is kept in {self.previous_dir})")
            if self.checkpoints_of(stage):
                raise CosegError(f"{self.path}: holds an unfinished {stage} stage; use --resume to continue "
                                 f"it or --overwrite to start it again")
        return "fresh"

    @contextlib.contextmanager
    def writing_results(self, stage: str) -> Iterator[StagedResult]:
        """Write a stage's new result; it replaces the old one only when the block completes.

        The files go to a hidden staging folder first. On a clean exit every
        result file is renamed into place (each rename atomic), the results of
        stages derived from this one are retired to ``previous/`` and the
        stage's metrics section is written with ``completed: true``. On an error
        the staging folder is removed and the previous result stays untouched.

        Raises:
            CosegError: a write failed (one line naming the path and the OS reason).
        """
        what = STAGE_FILES[stage]
        staging = self.path / f".{stage}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            with os_errors(staging):
                staging.mkdir(parents=True)
            staged = StagedResult(staging)
            yield staged
            missing = [n for n in what.results if not (staging / n).is_file()]
            if missing:
                raise RuntimeError(f"the {stage} stage did not write {', '.join(missing)}")
            with os_errors(self.path, "cannot put the new result in place"):
                self._keep_unkept(stage)
                for name in what.owned:
                    if (staging / name).is_file():
                        os.replace(staging / name, self.path / name)
                    elif name in what.extras and (self.path / name).is_file():
                        os.remove(self.path / name)  # an extra of the replaced result (it is kept in previous/)
                for derived in what.derived:
                    self.retire(derived)
            self.update_metrics(stage, {**staged.metrics, "completed": True}, replace=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _keep_unkept(self, stage: str) -> None:
        """Link old results no backup holds yet (a library caller that skipped `start_stage`)."""
        old = [self.path / n for n in STAGE_FILES[stage].owned if (self.path / n).is_file()]
        backups = list(self.previous_dir.glob(f"{stage}-*")) if self.previous_dir.is_dir() else []
        unkept = [p for p in old if not any((b / p.name).exists() and os.path.samefile(b / p.name, p)
                                            for b in backups)]
        if unkept:
            backup = self.new_backup(stage)
            for p in unkept:
                _link_or_copy(p, backup / p.name)

    def retire(self, stage: str) -> None:
        """Move a derived stage's results, checkpoints and sections into previous/ (they are stale now)."""
        files = [self.path / n for n in STAGE_FILES[stage].owned if (self.path / n).is_file()]
        files += self.checkpoints_of(stage)
        if files:
            backup = self.new_backup(stage)
            for p in files:
                dest = backup / p.relative_to(self.path)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(p, dest)
            log.info("%s: the %s result was made from the replaced one; moved to %s", self.path, stage, backup)
        metrics = self.read_metrics()
        if stage in metrics:
            del metrics[stage]
            write_json_atomic(self.metrics_path, metrics)
        config = self.read_config()
        if stage in config:
            del config[stage]
            write_json_atomic(self.config_path, config)

    def new_backup(self, stage: str) -> Path:
        """A new ``previous/<stage>-<UTC time>[-n]/`` holding copies of config.json and metrics.json."""
        stamp = _now().strftime("%Y%m%d-%H%M%S")
        backup, n = self.previous_dir / f"{stage}-{stamp}", 1
        while backup.exists():
            n += 1
            backup = self.previous_dir / f"{stage}-{stamp}-{n}"
        backup.mkdir(parents=True)
        for p in (self.config_path, self.metrics_path):
            if p.is_file():
                shutil.copy2(p, backup / p.name)
        return backup

    # ------------------------------------------------------------ process control
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the run so two processes never write it at once.

        Raises:
            CosegError: another process holds the lock.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                raise CosegError(f"{self.path}: another coseg process is writing this run") from e
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def log_to_file(self, logger_name: str = "coseg") -> Iterator[None]:
        """Append records of the `coseg` loggers to the run's log.txt while inside."""
        handler = logging.FileHandler(self.log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger = logging.getLogger(logger_name)
        previous_level = logger.level
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(previous_level)
            handler.close()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _link_or_copy(src: Path, dest: Path) -> None:
    """A hard link of `src` at `dest` (no space used), or a copy where links are not possible."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read ({e})") from e
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data
