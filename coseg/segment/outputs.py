"""Registers the segmentation stage's outputs with `coseg render` and `coseg eval`.

- ``coseg render RUN --what labels``: single-channel id maps (input label ids;
  uint8, or uint16 when an id exceeds 255).
- ``coseg render RUN --what features``: the rendered finest-scale unprojected
  features shown as colours (first 3 PCA components, min-max scaled per view).
- ``coseg eval``: a ``segmentation`` section (mIoU, accuracy, FPS of RGB +
  segmentation, CH/DB of rendered features, the raw labels' mIoU).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from coseg.building.evaluate import METRIC_SECTIONS, RENDER_OUTPUTS

log = logging.getLogger(__name__)


def _segmented(ctx):
    from coseg.segment.evaluate import SegmentedRun

    if "segmented_run" not in ctx.cache:
        ctx.cache["segmented_run"] = SegmentedRun(ctx.run.path)
    return ctx.cache["segmented_run"]


def render_labels(ctx, cam) -> np.ndarray:
    ids = _segmented(ctx).render_labels(cam)
    return ids.astype(np.uint8 if ids.max(initial=0) < 256 else np.uint16)


def render_features(ctx, cam) -> np.ndarray:
    run = _segmented(ctx)
    feats = run.unprojected_features(1)
    if feats is None:
        from coseg.errors import InputError

        raise InputError(f"{ctx.run.path}: no cached unprojected features (run coseg segment again)")
    img = run.render_features(cam, feats[:, :3])
    lo, hi = img.reshape(-1, 3).min(0), img.reshape(-1, 3).max(0)
    return ((img - lo) / np.maximum(hi - lo, 1e-8)).astype(np.float32)


def evaluate(run, scene, backend: str = "auto"):
    from coseg.segment.evaluate import evaluate_segmentation

    if not (Path(run.path) / "segmentation.npz").exists():
        return None
    if not any(c.gt_path is not None for c in scene.test_cameras):  # a real capture: nothing to score against
        log.info("%s: no test views with ground-truth maps (gt/); the segmentation is not scored", scene.root)
        return None
    out = evaluate_segmentation(run.path, scene)
    trained = run.read_metrics().get("segmentation", {})
    for key in ("learnable_params_mb", "feature_extractor", "field"):
        if key in trained:
            out[key] = trained[key]
    return out


RENDER_OUTPUTS["labels"] = render_labels
RENDER_OUTPUTS["features"] = render_features
METRIC_SECTIONS["segmentation"] = evaluate
