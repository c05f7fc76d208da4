"""Inputs of the segmentation stage: labels, unprojected 2D features, spatial features.

- Labels: the raw zero-shot label maps of the training views; class ids found
  in them become the decoder's outputs (ids 255 and 65535 are "void").
- 2D features (paper Sec. 3.2, Algorithm 1): every training image goes through
  the feature extractor (4 scales), a PCA fitted on samples of all views
  reduces each scale to 64-d and L2-normalises it, and the engine's
  unprojection pass lifts the maps onto the Gaussians. The four scales are
  bilinearly resized to the finest scale's grid and unprojected in one sweep
  of 4·64 channels. Gaussians blended into fewer than τ·V·H·W training pixels
  are pruned (attendance rate). The result is cached in the run folder.
- Pruning and visible sets: attendance-rate pruning of the Gaussians, the
  Gaussians each training view blends.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from coseg.errors import InputError

log = logging.getLogger(__name__)

VOID_IDS = (255, 65535)


@dataclass
class LabelSet:
    """Which classes the decoder predicts and which views supervise it."""

    class_ids: np.ndarray
    """[C] label ids found in the training labels, sorted; output k means class_ids[k]."""
    lut: np.ndarray
    """[max_id + 1] label id -> output index, -1 for void."""
    labelled: list[int]
    """Indices (into the training cameras) of the views that have a label map."""
    missing: int
    """Training views without a label map (skipped by the pixel loss)."""

    def to_index(self, labels: np.ndarray) -> np.ndarray:
        """[H, W] label ids -> [H, W] int64 output indices (-1 = void / unknown)."""
        out = np.full(labels.shape, -1, np.int64)
        ok = (labels >= 0) & (labels < len(self.lut))
        out[ok] = self.lut[labels[ok]]
        return out


def collect_labels(scene, cams, source=None) -> LabelSet:
    """Scan the training label maps.

    Args:
        scene: the run's scene.
        cams: the training cameras.
        source: a `coseg.segment.sources.TrainingLabels` (default: the scene's semantic labels).

    Raises:
        InputError: no training view has labels, or the labels hold one class only.
    """
    load = scene.load_labels if source is None else source.load
    void = VOID_IDS if source is None else source.void
    found: set[int] = set()
    labelled, missing = [], 0
    for i, cam in enumerate(cams):
        ids = load(cam)
        if ids is None:
            missing += 1
            continue
        labelled.append(i)
        found.update(int(v) for v in np.unique(ids) if int(v) not in void)
    if not labelled:
        raise InputError(f"{scene.root}: no training view has a label map (labels/<stem>.png); "
                         "the segmentation stage needs raw zero-shot labels")
    if missing:
        log.warning("%d of %d training views have no label map; they are skipped by the pixel loss",
                    missing, len(cams))
    if len(found) < 2:
        what = "segment" if source is not None and source.source == "instance_masks" else "class"
        raise InputError(f"{scene.root}: the training labels hold {len(found)} {what} "
                         f"({sorted(found)}); segmentation needs at least two")
    class_ids = np.array(sorted(found), np.int64)
    lut = np.full(int(class_ids.max()) + 1, -1, np.int64)
    lut[class_ids] = np.arange(len(class_ids))
    return LabelSet(class_ids, lut, labelled, missing)


def label_index_maps(scene, cams, labels: LabelSet, source=None) -> dict[int, torch.Tensor]:
    """[H, W] int64 output-index maps (-1 = void) of the labelled training views, by camera index.

    `source`: the `coseg.segment.sources.TrainingLabels` the labels came from (None: the scene's maps).
    """
    load = scene.load_labels if source is None else source.load
    return {i: torch.from_numpy(labels.to_index(load(cams[i]))) for i in labels.labelled}


def attendance_counts(cams, params: dict) -> np.ndarray:
    """[N] blended training pixels of every Gaussian (what attendance-rate pruning counts).

    The count does not depend on what is unprojected, so a one-channel map stands in for the
    features of the fields that unproject none.
    """
    from coseg.render import camera_tensors, unproject_features

    viewmats, Ks = zip(*(camera_tensors(c) for c in cams))
    ones = (np.ones((c.height, c.width, 1), np.float32) for c in cams)
    _, counts = unproject_features(params["means"], params["quats"], params["scales"], params["opacities"],
                                   torch.stack(viewmats), torch.stack(Ks), cams[0].width, cams[0].height, ones)
    return np.asarray(counts, np.int64)


def prune_by_attendance(counts: np.ndarray, tau: float, cams) -> np.ndarray:
    """[N_kept] int64 indices of the Gaussians that reach the attendance rate over `cams`.

    Raises:
        InputError: pruning removed every Gaussian.
    """
    from coseg.render import attendance_mask

    kept = np.flatnonzero(attendance_mask(counts, tau, len(cams), cams[0].width, cams[0].height))
    if len(kept) == 0:
        raise InputError(f"attendance-rate pruning (tau={tau:g}) removed every Gaussian; "
                         "lower --attendance-tau")
    log.info("attendance pruning (tau=%g) kept %d of %d Gaussians", tau, len(kept), len(counts))
    return kept.astype(np.int64)


def kept_tensors(params: dict, kept: np.ndarray) -> dict:
    """The Gaussian tensors of the kept Gaussians only (contiguous copies)."""
    idx = torch.from_numpy(kept)
    return {k: v[idx].contiguous() for k, v in params.items()}


def _resize_to(maps: list[np.ndarray], hw: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize 4 maps [h_n, w_n, D] to `hw` and concatenate -> [H', W', 4D]."""
    out = []
    for m in maps:
        if m.shape[:2] != hw:
            t = torch.from_numpy(np.ascontiguousarray(m, np.float32)).permute(2, 0, 1)[None]
            t = torch.nn.functional.interpolate(t, size=hw, mode="bilinear", align_corners=False)
            m = t[0].permute(1, 2, 0).numpy()
        out.append(np.asarray(m, np.float32))
    return np.ascontiguousarray(np.concatenate(out, axis=-1))


def feature_cache_key(gaussians_path: Path, cams, extractor, feature_dim: int, seed: int,
                      norm: str = "l2") -> str:
    """Key of the unprojected-feature cache: everything the cached features depend on.

    The Gaussians file (size, mtime), the views and their image size, the extractor's
    fingerprint (name, model, a digest of its weights, blocks), the PCA width, the seed and
    the normalisation after the PCA (`coseg.features.pca.NORMS`; "l2" keys as before it existed).
    """
    from coseg.features import extractor_fingerprint

    h = hashlib.sha256()
    st = gaussians_path.stat()
    # Not the path: ablation runs share a copy of the same gaussians.ply (and this cache).
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(json.dumps([[c.name, c.width, c.height] for c in cams]).encode())
    h.update(f"{extractor_fingerprint(extractor)}:{feature_dim}:{seed}".encode())
    if norm != "l2":
        h.update(f":{norm}".encode())
    return h.hexdigest()[:16]


def unproject_scales(scene, cams, params: dict, extractor, feature_dim: int, seed: int, cache_dir: Path,
                     cache_key: str, norm: str = "l2") -> Iterator[dict]:
    """Extract, reduce and unproject 4 feature scales; yields progress, returns via `result`.

    The final record has ``result = (f_d [N, sum(widths)] float32, counts [N] int64, widths)``:
    the 4 scales side by side, scale n taking ``widths[n]`` channels (at most
    `feature_dim`; fewer for a scale with fewer channels or samples, see `fit_pca`).
    """
    from coseg.features.pca import FeatureReducer
    from coseg.render import camera_tensors, unproject_features

    cache = cache_dir / f"unprojected-{cache_key}.npz"
    if cache.exists():
        with np.load(cache) as z:
            log.info("unprojected features loaded from %s", cache)
            yield {"stage": "unproject", "cached": True,
                   "result": (z["features"].astype(np.float32), z["counts"].astype(np.int64),
                              tuple(int(w) for w in z["widths"]))}
            return
    # One spill folder per process: two stages sharing a cache (ablation rows run side by side)
    # would otherwise write and delete each other's view files.
    spill = cache_dir / f"spill-{os.getpid()}"
    reducer = FeatureReducer(extractor, dim=feature_dim, seed=seed, spill_dir=spill, norm=norm)
    import time

    t0 = time.perf_counter()
    for i in reducer.fit(lambda k: scene.load_image(cams[k]), len(cams)):
        yield {"stage": "features", "view": i + 1, "views": len(cams)}
    extract_s = time.perf_counter() - t0
    viewmats, Ks = zip(*(camera_tensors(c) for c in cams))
    first_hw: list[tuple[int, int]] = []

    def maps() -> Iterator[np.ndarray]:
        for _, reduced in reducer.transform_views():
            hw = first_hw[0] if first_hw else reduced[0].shape[:2]
            first_hw[:] = [hw]
            yield _resize_to(reduced, hw)

    t1 = time.perf_counter()
    features, counts = unproject_features(
        params["means"], params["quats"], params["scales"], params["opacities"],
        torch.stack(viewmats), torch.stack(Ks), cams[0].width, cams[0].height, maps())
    unproject_s = time.perf_counter() - t1
    widths = tuple(p.components.shape[0] for p in reducer.projections)
    shutil.rmtree(spill, ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    from coseg.io.atomic import atomic_open

    with atomic_open(cache, "wb") as f:
        np.savez(f, features=features.astype(np.float16), counts=counts, widths=np.array(widths))
    yield {"stage": "unproject", "cached": False, "extract_s": extract_s,
           "extract_s_per_image": extract_s / max(len(cams), 1), "unproject_s": unproject_s,
           "result": (np.asarray(features, np.float32), np.asarray(counts, np.int64), widths)}


def visible_sets(cams, params: dict, indices: list[int]) -> Iterator[tuple[int, int, np.ndarray]]:
    """(position in `indices`, camera index, [P] visible kept-Gaussian indices) for every view in `indices`."""
    from coseg.render import camera_tensors, visible_set

    for j, i in enumerate(indices):
        viewmat, K = camera_tensors(cams[i])
        yield j, i, np.asarray(visible_set(params["means"], params["quats"], params["scales"],
                                           params["opacities"], viewmat, K, cams[i].width, cams[i].height))
