"""The scenes of a `coseg batch` command: folders, globs and manifest files.

A manifest is a text file with one scene per line: the scene folder
(relative to the manifest) followed by `coseg run` options for that scene
only, shell-quoted; ``--name NAME`` names its run folder; ``#`` starts a
comment. Example::

    # scene            its own options
    kitchen            --iterations 5000
    garden/photos      --name garden --downscale 2
"""

from __future__ import annotations

import glob
import shlex
from dataclasses import dataclass
from pathlib import Path

from coseg.errors import InputError


@dataclass(frozen=True)
class BatchScene:
    """One scene of a batch and the `coseg run` options it runs with."""

    name: str
    """Its run folder's name under the batch's --out (unique in the batch)."""
    path: Path
    """The scene folder (or folder of bare photos)."""
    options: tuple[str, ...] = ()
    """Extra `coseg run` options of this scene (after the batch-wide ones)."""


def expand_scenes(specs: list[str]) -> list[BatchScene]:
    """Scenes of the command line, in order: folders, glob patterns and manifest files.

    A path that does not exist is kept (its first stage reports it for that
    scene alone); a glob that matches no folder or a manifest line that cannot
    be parsed is an error of the whole command.

    Raises:
        InputError: an empty glob, a bad manifest line, or two scenes sharing a run folder name.
    """
    scenes: list[BatchScene] = []
    for spec in specs:
        path = Path(spec)
        if path.is_file():
            scenes += _read_manifest(path)
        elif any(ch in spec for ch in "*?[") and not path.exists():
            matches = sorted(Path(m) for m in glob.glob(spec) if Path(m).is_dir())
            if not matches:
                raise InputError(f"{spec}: matches no scene folder")
            scenes += [BatchScene(m.name, m) for m in matches]
        else:
            scenes.append(BatchScene(path.resolve().name or spec, path))
    _check_unique(scenes)
    return scenes


def _read_manifest(path: Path) -> list[BatchScene]:
    scenes = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a readable manifest ({e.__class__.__name__})") from e
    for number, line in enumerate(lines, 1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as e:
            raise InputError(f"{path}:{number}: {e}") from e
        if not words:
            continue
        scene = Path(words[0]) if Path(words[0]).is_absolute() else path.parent / words[0]
        options = words[1:]
        name = scene.resolve().name
        if "--name" in options:
            at = options.index("--name")
            if at + 1 >= len(options) or not _is_folder_name(options[at + 1]):
                raise InputError(f"{path}:{number}: --name needs a folder name (no / or leading .)")
            name = options[at + 1]
            options = options[:at] + options[at + 2:]
        scenes.append(BatchScene(name, scene, tuple(options)))
    if not scenes:
        raise InputError(f"{path}: the manifest lists no scene")
    return scenes


def _is_folder_name(name: str) -> bool:
    return bool(name) and "/" not in name and not name.startswith(".")


def _check_unique(scenes: list[BatchScene]) -> None:
    seen: dict[str, BatchScene] = {}
    for scene in scenes:
        if scene.name in seen:
            raise InputError(f"scenes {seen[scene.name].path} and {scene.path} would share the run folder "
                             f"{scene.name!r}; list them in a manifest with --name")
        seen[scene.name] = scene
