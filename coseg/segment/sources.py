"""Which raw labels train the segmentation field: semantic class maps or associated instance masks.

`SegmentConfig.labels` chooses the label source (plugin kind ``label_source``):

- ``semantic``: the scene's ``labels/<stem>.png`` class maps, read as they
  are; segments are named from ``classes.json``.
- ``instance_masks``: per-view instance masks (0 = no mask) from the folder
  `mask_folder` finds: `SegmentConfig.masks` when given, else ``RUN/masks``
  (written by `coseg run`'s labels stage), else ``SCENE/masks``. Their ids
  mean nothing across views: they are associated through the run's built
  Gaussians (`coseg.labels.associate_instances` on the engine's dominant-Gaussian
  maps of the training views, in the working frame) into segment ids 1..K.
  A field with K outputs renders K channels per pixel, so only the
  `max_segments` largest segments (training pixels) are kept; the pixels of
  the others are not supervised. The field is class-agnostic: segment k is
  named "object k" (``classes.json`` of the run), and `coseg eval` matches
  each segment to a GT class (`coseg.segment.evaluate`).
- ``auto``: semantic when a training view has a label map, else instance masks
  when a mask folder exists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from coseg.errors import InputError

log = logging.getLogger(__name__)

@dataclass
class TrainingLabels:
    """The chosen label source, ready for `coseg.segment.prepare.collect_labels`."""

    source: str
    """"semantic" or "instance_masks"."""
    load: Callable[[object], np.ndarray | None]
    """Camera -> [H, W] int ids, or None for a view without labels."""
    void: tuple[int, ...]
    """Ids that are not supervised."""
    names: dict[int, str] = field(default_factory=dict)
    """Id -> segment name (empty: the scene's classes)."""
    info: dict = field(default_factory=dict)
    """Recorded in the segmentation metrics (source, mask folder, segment counts)."""


def mask_folder(run_path: Path, scene, config) -> Path | None:
    """The instance-mask folder the segmentation stage reads (module docstring), or None."""
    if config.masks is not None:
        return Path(config.masks)
    for folder in (Path(run_path) / "masks", Path(scene.root) / "masks"):
        if folder.is_dir() and any(folder.glob("*.png")):
            return folder
    return None


def resolve_source(run_path: Path, scene, config) -> str:
    """"semantic" or "instance_masks" for `config.labels` (resolving "auto").

    Raises:
        InputError: no labels of the chosen (or any) kind.
    """
    has_semantic = any(c.label_path is not None for c in scene.train_cameras)
    if config.labels == "semantic" or (config.labels == "auto" and has_semantic):
        return "semantic"
    folder = mask_folder(run_path, scene, config)
    if folder is None:
        if config.labels == "instance_masks":
            raise InputError(f"{scene.root}: no instance masks (masks/<stem>.png in the scene or the run); "
                             "make them with `coseg labels SCENE` or pass --masks DIR")
        raise InputError(f"{scene.root}: no raw labels — neither labels/<stem>.png nor masks/<stem>.png; "
                         "make masks with `coseg labels SCENE` (or `coseg run` does it)")
    if not folder.is_dir():
        raise InputError(f"--masks {folder}: not a folder")
    return "instance_masks"


def check_masks(scene, folder: Path, cams) -> None:
    """Read every training view's mask once (size and format checks, one line each)."""
    found = 0
    for cam in cams:
        path = folder / f"{cam.name}.png"
        if path.exists():
            scene.load_id_map(cam, path, fill=0)
            found += 1
    if not found:
        raise InputError(f"{folder}: no instance mask for any of the {len(cams)} training views "
                         f"(expected <image stem>.png, e.g. {cams[0].name}.png)")


def training_labels(run_path: Path, scene, gaussians, cams, config) -> TrainingLabels:
    """The raw labels of the training views `cams` (module docstring).

    Args:
        run_path: the run folder (``RUN/masks`` is looked for there).
        scene: the run's scene, in the working frame.
        gaussians: the built Gaussians, in the working frame (for the association).
        cams: the training cameras.
        config: a `coseg.segment.config.SegmentConfig`.
    """
    source = resolve_source(run_path, scene, config)
    if source == "semantic":
        from coseg.segment.prepare import VOID_IDS

        return TrainingLabels("semantic", scene.load_labels, VOID_IDS, info={"label_source": "semantic"})
    folder = mask_folder(run_path, scene, config)
    check_masks(scene, folder, cams)
    maps, info = associated_masks(scene, gaussians, cams, folder, config)
    names = {k: f"object {k}" for k in range(1, info["segments_kept"] + 1)}
    return TrainingLabels("instance_masks", lambda cam: maps.get(cam.name), (0,), names, info)


def associated_masks(scene, gaussians, cams, folder: Path, config) -> tuple[dict[str, np.ndarray], dict]:
    """Associate the masks of `folder` through the Gaussians; keep the `max_segments` largest segments.

    Returns:
        camera name -> [H, W] int32 segment ids (0 = unsupervised), and the info record.
    """
    import time

    import torch

    from coseg.plugins import registry
    from coseg.render import camera_tensors, dominant_gaussians, gaussian_tensors

    p = gaussian_tensors(gaussians)
    t0 = time.perf_counter()

    def dominant(cam):
        viewmat, K = camera_tensors(cam)
        with torch.no_grad():
            return dominant_gaussians(p["means"], p["quats"], p["scales"], p["opacities"], viewmat, K,
                                      cam.width, cam.height)

    plugin = registry().get("label_source", "instance_masks")
    label_set = plugin.load(scene, cams, dominant=dominant, folder=str(folder),
                            iou_threshold=config.association_iou)
    maps = label_set.maps
    ids = np.concatenate([m.ravel() for m in maps.values()])
    counts = np.bincount(ids)
    counts[0] = 0
    k = int((counts > 0).sum())
    order = np.argsort(-counts, kind="stable")[: min(k, config.max_segments)]
    renumber = np.zeros(len(counts), np.int32)
    renumber[order] = np.arange(1, len(order) + 1)  # segment 1 = the largest
    maps = {name: renumber[m] for name, m in maps.items()}
    covered = float(counts[order].sum() / max(counts.sum(), 1))
    if k > config.max_segments:
        log.warning("%d associated segments; the %d largest are kept (%.0f %% of the masked training pixels), "
                    "the rest are not supervised (max_segments)", k, config.max_segments, 100 * covered)
    info = {"label_source": "instance_masks", "mask_folder": str(folder), "associated_segments": k,
            "segments_kept": int(len(order)), "masked_pixels_kept": round(covered, 4),
            "association_s": round(time.perf_counter() - t0, 2)}
    return maps, info
