"""Run folders: the outputs of one scene's processing.

A run folder holds ``config.json`` (written first, every setting used, the
run-format version), ``gaussians.ply`` (building stage), ``metrics.json``
(one section per stage, merged, never clobbered), ``checkpoints/`` (resume
points) and ``log.txt``. Every file is written atomically (temp + rename), so
a crash or kill leaves a folder that can still be inspected and resumed.

Sections of ``config.json``: ``format_version``, ``coseg_version``,
``created``, ``scene`` (path, downscale) and one section per stage
(``building``, ``segmentation``, ...). `RunDir.update_config` merges a section.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

from coseg import RUN_FORMAT_VERSION, __version__
from coseg.errors import CosegError, InputError
from coseg.io.atomic import write_json_atomic

log = logging.getLogger(__name__)


class RunDir:
    """A run folder on disk (see module docstring).

    Args:
        path: the folder; `create` makes it, `open` checks an existing one.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

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

    # ------------------------------------------------------------ life cycle
    @classmethod
    def create(cls, path: str | os.PathLike, scene_path: str | os.PathLike | None = None,
               downscale: int = 1, overwrite: bool = False) -> "RunDir":
        """Make a new run folder and write its config.json header.

        Args:
            path: folder to create (may exist if empty, or if `overwrite`).
            scene_path: the scene folder the run processes (None for a bare import).
            downscale: integer image downscale the scene is read with.
            overwrite: allow a folder that already holds a run (its files are replaced
                as the stages write them).

        Raises:
            CosegError: the folder already holds a run and `overwrite` is False.
        """
        run = cls(path)
        if run.config_path.exists() and not overwrite:
            raise CosegError(f"{run.path}: already holds a run (config.json exists); "
                             f"use --resume to continue it or --overwrite to replace it")
        if run.path.exists() and not run.path.is_dir():
            raise CosegError(f"{run.path}: exists and is not a folder")
        run.path.mkdir(parents=True, exist_ok=True)
        header = {
            "format_version": RUN_FORMAT_VERSION,
            "coseg_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "scene": {"path": None if scene_path is None else str(Path(scene_path).resolve()),
                      "downscale": int(downscale)},
        }
        write_json_atomic(run.config_path, header)
        if overwrite and run.metrics_path.exists():
            run.metrics_path.unlink()
        return run

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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read ({e})") from e
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data
