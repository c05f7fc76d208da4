"""The data-safety contract's shared checks (docs/data-safety.md).

Every command and studio action that writes resolves its output paths and
passes them through `check_output` before writing anything:

- inputs are never written: an output may not equal an input file, lie inside
  an input folder (a scene's images, labels, masks, gt, depth, sparse, ...),
  or be a folder that contains one;
- a run folder's stage results (gaussians.ply, segmented.ply, checkpoints, ...)
  are never the target of an export or edit (`run_results`);
- a failure to write is one line naming the path and the OS reason
  (`os_errors`), never a traceback.

The protected sets come from the scene that was read (`scene_inputs`, the files
its reader actually used) and from the run folder layout (`run_results`).
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from coseg.errors import CosegError

#: Sub-folders of a scene folder that hold inputs, whatever the format.
SCENE_INPUT_FOLDERS = ("images", "labels", "masks", "gt", "depth", "sparse", "rgb", "semantic_class",
                       "color", "pose", "intrinsic", "label-filt", "train", "test", "val")
#: Files beside a scene that readers use.
SCENE_INPUT_FILES = ("transforms.json", "transforms_train.json", "transforms_test.json",
                     "transforms_val.json", "classes.json", "points3d.ply", "train.txt", "test.txt",
                     "traj_w_c.txt")
#: What a run folder's stages own (see coseg.run).
RUN_RESULT_NAMES = ("config.json", "gaussians.ply", "segmented.ply", "segmentation.npz", "metrics.json",
                    "checkpoints", "cache", "previous", "log.txt")


class OutputRefused(CosegError):
    """An output path that would write over an input or a stage result."""


@dataclass
class Protected:
    """Paths no output may touch, each with the reason shown to the user."""

    files: dict[Path, str] = field(default_factory=dict)
    """Resolved file -> what it is ("an input image of the scene", ...)."""
    folders: dict[Path, str] = field(default_factory=dict)
    """Resolved folder -> what it is; nothing may be written inside it."""

    def add_file(self, path: str | os.PathLike, why: str) -> None:
        self.files.setdefault(_resolve(path), why)

    def add_folder(self, path: str | os.PathLike, why: str) -> None:
        self.folders.setdefault(_resolve(path), why)

    def __or__(self, other: "Protected") -> "Protected":
        out = Protected(dict(self.files), dict(self.folders))
        for p, why in other.files.items():
            out.files.setdefault(p, why)
        for p, why in other.folders.items():
            out.folders.setdefault(p, why)
        return out


def _resolve(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve()


def scene_inputs(scene_or_root) -> Protected:
    """Everything a scene's reader read: input files, and the folders that hold them.

    Args:
        scene_or_root: a `coseg.scene.Scene`, or a scene folder path (then only the
            conventional input folders and files that exist are protected).
    """
    is_path = isinstance(scene_or_root, (str, os.PathLike))
    root = Path(scene_or_root) if is_path else Path(scene_or_root.root)
    p = Protected()
    for name in SCENE_INPUT_FOLDERS:
        if (root / name).is_dir():
            p.add_folder(root / name, f"an input folder of the scene {root}")
    for name in SCENE_INPUT_FILES:
        if (root / name).is_file():
            p.add_file(root / name, f"an input file of the scene {root}")
    for cam in () if is_path else scene_or_root.cameras:
        for attr, what in (("image_path", "image"), ("label_path", "label map"), ("gt_path", "ground-truth map"),
                           ("depth_path", "depth map")):
            path = getattr(cam, attr, None)
            if path is not None:
                p.add_file(path, f"an input {what} of the scene {root}")
                if _resolve(Path(path).parent) != _resolve(root):  # images beside transforms.json: files only
                    p.add_folder(Path(path).parent, f"a folder of input {what}s of the scene {root}")
    return p


def run_results(run_path: str | os.PathLike) -> Protected:
    """A run folder's stage results: only the stage that made them may replace them."""
    from coseg.run import STAGE_FILES

    run = Path(run_path)
    p = Protected()
    names = [*RUN_RESULT_NAMES, *(n for files in STAGE_FILES.values() for n in files.owned)]
    for name in names:
        target = run / name
        why = f"a result of the run {run} (re-run its stage with --overwrite to replace it)"
        if name in ("checkpoints", "cache", "previous"):
            p.add_folder(target, why)
        else:
            p.add_file(target, why)
    return p


def inputs_of(*sources: str | os.PathLike | None) -> Protected:
    """Everything a command reading `sources` must not write over.

    A run folder protects its results and the inputs of the scene it records; a
    file protects itself and, when it lies in a run folder, that run; a scene
    folder protects its inputs. None entries are skipped.
    """
    import json

    p = Protected()
    for source in sources:
        if source is None:
            continue
        path = Path(source)
        run = path if path.is_dir() else path.parent
        if path.is_file():
            p = p | input_files([path], f"an input of this command ({path.name})")
        if (run / "config.json").is_file():
            p = p | run_results(run)
            try:
                scene = (json.loads((run / "config.json").read_text()).get("scene") or {}).get("path")
            except (OSError, ValueError, AttributeError):
                scene = None
            if scene and Path(scene).is_dir():
                p = p | scene_inputs(scene)
        elif path.is_dir():
            p = p | scene_inputs(path)
    return p


def input_files(paths: Iterable[str | os.PathLike], why: str = "an input of this command") -> Protected:
    """Protect the given files (e.g. the PLY an edit reads)."""
    p = Protected()
    for path in paths:
        p.add_file(path, why)
    return p


def check_output(path: str | os.PathLike, protected: Protected, what: str = "--out",
                 kind: str | None = None) -> Path:
    """Refuse an output that equals, lies inside, or contains a protected path.

    Args:
        path: the file or folder about to be written (it need not exist).
        protected: from `scene_inputs`, `run_results`, `input_files`, `inputs_of`
            (combine with ``|``).
        what: the option or action that named the path, for the message.
        kind: "file" or "folder": also refuse a folder (or file) in the way, and a
            file where a parent folder must go.

    Returns:
        The resolved path.

    Raises:
        OutputRefused: one line naming the path and what it would write over.
    """
    out = _resolve(path)
    if kind == "file" and out.is_dir():
        raise OutputRefused(f"{path}: a folder is in the way of {what}; choose a file name")
    if kind == "folder" and out.exists() and not out.is_dir():
        raise OutputRefused(f"{path}: a file is in the way of {what}; choose a folder")
    blocking = next((d for d in out.parents if d.exists() and not d.is_dir()), None)
    if kind is not None and blocking is not None:
        raise OutputRefused(f"{path}: {blocking} is a file, not a folder; choose another {what}")
    for f, why in protected.files.items():
        if out == f:
            raise OutputRefused(f"{path}: refusing to write {what} over {why}; choose another path")
        if _inside(f, out):
            raise OutputRefused(f"{path}: refusing to write {what} into a folder that holds {why} ({f})")
    for d, why in protected.folders.items():
        if out == d or _inside(out, d):
            raise OutputRefused(f"{path}: refusing to write {what} inside {why} ({d}); choose another path")
        if _inside(d, out):
            raise OutputRefused(f"{path}: refusing to write {what} into a folder that holds {why} ({d})")
    return out


def _inside(child: Path, parent: Path) -> bool:
    return child != parent and parent in child.parents


def os_error_line(path: str | os.PathLike, e: OSError, action: str = "cannot write") -> str:
    """One line naming the path and the OS reason (read-only, no space, a folder in the way)."""
    reason = {errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on the device",
              errno.EACCES: "permission denied", errno.EISDIR: "a folder is in the way",
              errno.ENOTDIR: "a file is in the way of a folder", errno.EDQUOT: "disk quota exceeded"}.get(
        e.errno, e.strerror or type(e).__name__)
    where = getattr(e, "filename", None) or path
    if Path(where).name.startswith(f".{Path(path).name}."):  # the temporary file of an atomic write
        where = path
    return f"{where}: {action} ({reason})"


@contextlib.contextmanager
def os_errors(path: str | os.PathLike, action: str = "cannot write") -> Iterator[None]:
    """Turn an OSError raised inside the block into a one-line `CosegError`."""
    try:
        yield
    except CosegError:
        raise
    except OSError as e:
        raise CosegError(os_error_line(path, e, action)) from e
