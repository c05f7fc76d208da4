"""Writing a generator's masks for every image of a scene: where, how, resumable, never over inputs.

Where (the rule `coseg labels` and `coseg run` follow, docs/labels.md):

- `coseg labels SCENE` writes ``SCENE/masks/`` when the scene has no
  ``masks/`` yet (a new input folder of the scene from then on);
- a ``masks/`` (or ``--out`` folder) that already holds a set is never
  replaced silently: a set written by `coseg labels` (its ``labels.json``
  provenance says so) is replaced with ``--overwrite`` only, the replaced set
  kept as ``<folder>.previous/``; masks coseg did not write are never
  replaced (choose ``--out DIR``);
- `coseg run` writes the masks it generates into the run folder
  (``RUN/masks/``), never into the scene.

How: one ``<image stem>.png`` per view (uint8, or uint16 past 255 ids; 0 =
no mask) into a hidden staging folder ``.<folder>.partial`` beside the
target, with ``labels.json`` (generator, settings, views, per-view mask
counts and seconds, ``completed``). The staging folder becomes the target in
one rename when every view is done, so a half-written set is never taken for
an input. An interrupted run resumes: views already in a staging folder
written with the same generator and settings are kept.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from coseg.errors import CosegError, InputError

log = logging.getLogger(__name__)

PROVENANCE = "labels.json"


def read_provenance(folder: Path) -> dict | None:
    """The ``labels.json`` of a mask folder written by coseg, or None."""
    p = Path(folder) / PROVENANCE
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and "generator" in data else None


def _holds_masks(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def check_target(scene, folder: Path, overwrite: bool) -> None:
    """Refuse a target that would write over inputs or silently replace a set (module docstring).

    `scene` None: the scene does not exist yet (bare photos before `coseg run`'s
    poses stage, whose own checks protect the photos).

    Raises:
        CosegError: one line naming the folder and what to do instead.
    """
    from coseg.io.safety import Protected, check_output, scene_inputs

    folder = Path(folder)
    protected = scene_inputs(scene) if scene is not None else Protected()
    mine = read_provenance(folder)
    if _holds_masks(folder):
        if mine is None:
            raise CosegError(f"{folder}: already holds masks that coseg did not write (no {PROVENANCE}); "
                             "they are never replaced — choose another folder with --out DIR")
        if not overwrite:
            raise CosegError(f"{folder}: already holds masks from the {mine['generator']!r} generator "
                             f"({mine.get('created', '?')}); pass --overwrite to replace them (the old set is "
                             f"kept as {folder.name}.previous) or choose another folder with --out DIR")
        previous = folder.parent / f"{folder.name}.previous"
        if previous.exists() and read_provenance(previous) is None:
            raise CosegError(f"{previous}: is in the way of keeping the replaced set and coseg did not write it; "
                             "move it away or choose another folder with --out DIR")
        # Our own earlier set: the only input folder this command may replace.
        protected.folders.pop(folder.resolve(), None)
    check_output(folder, protected, "masks")


def _staging(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.partial"


def _open_staging(folder: Path, header: dict) -> Path:
    """The staging folder, resumed when it was started with the same generator and settings."""
    stage = _staging(folder)
    old = read_provenance(stage)
    if old is not None and {k: old.get(k) for k in ("generator", "settings")} == \
            {k: header[k] for k in ("generator", "settings")}:
        log.info("resuming the unfinished mask set in %s", stage)
        return stage
    if stage.exists():
        log.info("discarding an unfinished mask set of other settings in %s", stage)
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    _write_provenance(stage, header)
    return stage


def _write_provenance(folder: Path, data: dict) -> None:
    from coseg.io.atomic import write_json_atomic

    write_json_atomic(folder / PROVENANCE, data)


def _finish(stage: Path, folder: Path) -> None:
    """Rename the staging folder into place; an earlier set of ours moves to ``<folder>.previous``."""
    if folder.exists():
        previous = folder.parent / f"{folder.name}.previous"
        if previous.exists():
            shutil.rmtree(previous)
        os.replace(folder, previous)
    os.replace(stage, folder)


def generate_labels(scene, generator, folder: str | Path, cameras=None, overwrite: bool = False,
                    stop_event=None) -> Iterator[dict]:
    """Run a label generator on every view and write its masks (module docstring); yields progress.

    Args:
        scene: a `coseg.scene.Scene` (images are read at its downscale).
        generator: a label-generator plugin (``generate``; ``settings`` and ``name`` recorded).
        folder: the target folder.
        cameras: views to label (default: every camera of the scene).
        overwrite: replace an earlier set of ours (kept as ``<folder>.previous``).
        stop_event: object with ``is_set()``; when set, stops after the current view
            (the staging folder is kept for a resume).

    Yields:
        ``{"stage": "labels", "view", "views", "name", "masks", "seconds", "cached"}`` per view,
        then ``{"stage": "stopped"}`` or ``{"stage": "done", "folder", "views", "empty", ...}``.

    Raises:
        CosegError / InputError: a refused target, a generator output of the wrong
            shape or with more ids than a PNG holds, or no mask in any image.
    """
    from coseg.io.images import write_png
    from coseg.io.safety import os_errors

    folder = Path(folder)
    cams = list(scene.cameras if cameras is None else cameras)
    check_target(scene, folder, overwrite)
    settings = generator.settings() if hasattr(generator, "settings") else {}
    name = getattr(generator, "name", type(generator).__name__)
    header = {"generator": name, "settings": settings, "scene": str(Path(scene.root).resolve()),
              "downscale": float(scene.downscale), "views": [c.name for c in cams], "completed": False,
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    with os_errors(folder):
        stage = _open_staging(folder, header)
        record = read_provenance(stage) or header
        per_view = record.setdefault("per_view", {})
        for i, cam in enumerate(cams):
            out = stage / f"{cam.name}.png"
            if out.exists() and cam.name in per_view:
                yield {"stage": "labels", "view": i + 1, "views": len(cams), "name": cam.name,
                       "masks": per_view[cam.name]["masks"], "seconds": 0.0, "cached": True}
                continue
            t0 = time.perf_counter()
            ids = np.asarray(generator.generate(scene.load_image(cam)))
            seconds = time.perf_counter() - t0
            if ids.shape != (cam.height, cam.width) or ids.dtype.kind not in "iu":
                raise InputError(f"label generator {name!r} returned a {ids.dtype} map of shape {ids.shape} "
                                 f"for {cam.image_path}; expected integer ids of shape {(cam.height, cam.width)}")
            if ids.size and (ids.min() < 0 or ids.max() > 65535):
                raise InputError(f"{cam.image_path}: the {name!r} generator gave ids outside 0..65535, "
                                 "more than a 16-bit mask PNG holds")
            n_masks = int(len(np.unique(ids[ids > 0])))
            if n_masks == 0:
                log.warning("%s: the %r generator found no mask in this image", cam.image_path, name)
            write_png(out, ids.astype(np.uint8 if ids.max(initial=0) < 256 else np.uint16))
            per_view[cam.name] = {"masks": n_masks, "seconds": round(seconds, 3)}
            _write_provenance(stage, record)
            yield {"stage": "labels", "view": i + 1, "views": len(cams), "name": cam.name, "masks": n_masks,
                   "seconds": seconds, "cached": False}
            if stop_event is not None and stop_event.is_set() and i + 1 < len(cams):
                yield {"stage": "stopped", "folder": str(stage)}
                return
        empty = [n for n, v in per_view.items() if v["masks"] == 0]
        if len(empty) == len(cams):
            raise InputError(f"the {name!r} generator found no mask in any of the {len(cams)} images "
                             f"(unfinished set kept in {stage})")
        times = [v["seconds"] for v in per_view.values() if v["seconds"] > 0]
        record.update(completed=True, empty_views=empty,
                      seconds_per_image=round(float(np.mean(times)), 3) if times else None,
                      masks_per_image=round(float(np.mean([v["masks"] for v in per_view.values()])), 1))
        _write_provenance(stage, record)
        _finish(stage, folder)
    yield {"stage": "done", "folder": str(folder), "views": len(cams), "empty": empty,
           "seconds_per_image": record["seconds_per_image"], "masks_per_image": record["masks_per_image"]}
