"""Studio project files (`.cosegproj`): a source reference plus an edit history.

A project never copies Gaussians: it names the source it was made from (a
`.ply` / `.splat`, a run folder or a scene folder) and stores the edit
operations of `EditDocument.ops` and a free-form view state (segment names,
hidden / locked segments, camera). Reopening reads the source again and
replays the operations, so the edited scene is rebuilt exactly.

The file is JSON written atomically::

    {"format": "cosegproj", "version": 1, "source": "/abs/path", "ops": [...], "view": {...}}

Autosaves are ordinary project files kept in the user cache directory
(``$XDG_CACHE_HOME/coseg/autosave``, default ``~/.cache``), one per source,
rewritten after every edit so a crash loses at most the last edit.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coseg.errors import InputError
from coseg.edit.replay import KNOWN_OPS
from coseg.io.atomic import write_json_atomic

PROJECT_SUFFIX = ".cosegproj"
FORMAT_VERSION = 1


@dataclass
class StudioProject:
    """What a `.cosegproj` file holds."""

    source: Path
    """The opened file or folder the edits apply to (absolute)."""
    ops: list[dict] = field(default_factory=list)
    """`EditDocument.ops`: the applied operations in order."""
    view: dict = field(default_factory=dict)
    """View state: names, hidden, locked, camera (JSON-able, read by the studio)."""
    model: dict = field(default_factory=dict)
    """`model_fingerprint` of the Gaussians the edits were made on (empty in older projects)."""

    def to_dict(self) -> dict:
        out = {"format": "cosegproj", "version": FORMAT_VERSION, "source": str(self.source),
               "ops": self.ops, "view": self.view}
        if self.model:
            out["model"] = self.model
        return out


def model_fingerprint(gaussians) -> dict:
    """What identifies the Gaussians a history was recorded on: their count and a digest of
    their positions and segment ids (a re-built or re-segmented source gives another)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(np.ascontiguousarray(gaussians.means, np.float32).tobytes())
    if gaussians.segments is not None:
        h.update(np.ascontiguousarray(gaussians.segments, np.int32).tobytes())
    return {"gaussians": len(gaussians), "digest": h.hexdigest()}


def check_fits(project: StudioProject, gaussians, where: str | Path) -> None:
    """Refuse to replay `project` onto Gaussians other than those its edits were made on.

    Raises:
        InputError: the source changed since (re-built, re-segmented or replaced); one line.
    """
    now = model_fingerprint(gaussians)
    if project.model and project.model != now:
        then = project.model.get("gaussians")
        change = (f"{then:,} Gaussians then, {now['gaussians']:,} now" if then != now["gaussians"]
                  else "its Gaussians or segments differ")
        raise InputError(f"{where}: the edits were made on another version of {project.source.name} "
                         f"({change}); it was rebuilt or segmented again since")


def save_project(path: str | Path, project: StudioProject) -> Path:
    """Write `project` to `path` atomically; refuses to replace the source itself.

    Returns:
        The written path.
    """
    path = Path(path)
    if path.exists() and project.source.exists() and path.resolve() == project.source.resolve():
        raise InputError(f"{path}: refusing to overwrite the project's source file")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, project.to_dict())
    return path


def load_project(path: str | Path) -> StudioProject:
    """Read a `.cosegproj`; a relative source is taken relative to the project file.

    Raises:
        InputError: unreadable JSON, wrong format, or an unknown operation.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not a studio project (invalid JSON: {e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != "cosegproj" or "source" not in data:
        raise InputError(f"{path}: not a studio project (no \"format\": \"cosegproj\" and \"source\")")
    if int(data.get("version", 0)) > FORMAT_VERSION:
        raise InputError(f"{path}: project version {data['version']} is newer than this studio ({FORMAT_VERSION})")
    ops = data.get("ops") or []
    bad = [op for op in ops if not isinstance(op, dict) or op.get("op") not in KNOWN_OPS]
    if bad:
        raise InputError(f"{path}: unknown edit operation {bad[0]!r}")
    source = Path(data["source"])
    if not source.is_absolute():
        source = (path.parent / source).resolve()
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    return StudioProject(source, list(ops), dict(data.get("view") or {}), dict(model))


def autosave_dir() -> Path:
    """Directory of the autosaves: ``$XDG_CACHE_HOME/coseg/autosave`` (default ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "coseg" / "autosave"


def autosave_path(source: str | Path) -> Path:
    """The autosave file of `source`: its name plus a hash of its absolute path."""
    source = Path(source).resolve()
    digest = hashlib.sha1(str(source).encode()).hexdigest()[:12]
    return autosave_dir() / f"{source.name}-{digest}{PROJECT_SUFFIX}"
