"""From a trained field to per-Gaussian segment ids and the run's output files.

The fusion decoder works on one view's visible Gaussians at a time (the
RandLA-Net hierarchy is built per view), so a Gaussian's stored logits are the
mean of its decoder logits over every training view that sees it; the few
kept Gaussians that no training view's visible set contains take the logits
of their nearest decoded neighbour. The per-Gaussian baseline stores its own
classified identities. The segment id of a Gaussian is the label id of its
arg-max class, so segments are semantic classes with the input label ids.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


def gaussian_logits(model) -> np.ndarray:
    """[N_kept, C] float32 logits of every kept Gaussian."""
    with torch.no_grad():
        if model.config.field != "coseg":
            return model.field.gaussian_logits().numpy().astype(np.float32)
        n, c = len(model.kept), len(model.labels.class_ids)
        total = np.zeros((n, c), np.float64)
        count = np.zeros(n, np.int64)
        views = list(model.views)
        others = [i for i in range(len(model.cams)) if i not in set(model.labels.labelled)]
        if others:
            from coseg.segment.prepare import encode_views

            for rec in encode_views(model.cams, model.params, model.encoder, model.encoder is not None,
                                    model.config.seed, others):
                if rec.get("view_inputs") is not None:
                    views.append(rec["view_inputs"])
        for vi in views:
            logits, _ = model.view_logits(vi)
            np.add.at(total, vi.visible, logits.numpy())
            np.add.at(count, vi.visible, 1)
    seen = count > 0
    out = np.zeros((n, c), np.float32)
    out[seen] = (total[seen] / count[seen, None]).astype(np.float32)
    filled = fill_from_nearest(out, model.xyz, seen)
    if filled:
        log.info("%d kept Gaussians outside every training view's visible set took their "
                 "nearest neighbour's logits", filled)
    return out


def fill_from_nearest(values: np.ndarray, xyz: np.ndarray, have: np.ndarray) -> int:
    """Rows of `values` where `have` is False take the row of their nearest (by `xyz`) row that has one.

    Returns:
        the number of rows filled (in place).
    """
    missing = ~have
    if not missing.any():
        return 0
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(xyz[have]).query(xyz[missing], k=1)
    values[missing] = values[have][nearest]
    return int(missing.sum())


def write_segmentation(model, out_dir: Path) -> dict:
    """Write segmentation.npz and segmented.ply of a trained model; returns the metrics summary."""
    return write_segment_outputs(model.run, model.scene, model.gaussians, model.kept, model.labels.class_ids,
                                 gaussian_logits(model), model.info, model.config.field, out_dir)


def write_segment_outputs(run, scene, gaussians, kept: np.ndarray, class_ids: np.ndarray, logits: np.ndarray,
                          info: dict, field: str, out_dir: Path | None = None) -> dict:
    """Write segmentation.npz (logits [N_kept, C], kept, class ids) and segmented.ply into `out_dir`
    (the staging folder of `RunDir.writing_results`; default the run folder itself).

    `gaussians` are in the run's working frame; segmented.ply is written in the input's frame.

    Returns:
        the stage's summary: `info` plus the field and the Gaussians per segment.
    """
    from coseg.io.atomic import atomic_open
    from coseg.io.ply import write_gaussians_ply

    out_dir = Path(run.path if out_dir is None else out_dir)
    segments = class_ids[np.argmax(logits, axis=1)].astype(np.int32)
    with atomic_open(out_dir / "segmentation.npz", "wb") as f:
        buf = io.BytesIO()
        np.savez(buf, logits=logits, kept=kept.astype(np.int64), class_ids=class_ids)
        f.write(buf.getvalue())
    from coseg.normalize import to_input_frame

    segmented = to_input_frame(run, gaussians.subset(kept))
    segmented.segments = segments
    write_gaussians_ply(segmented, out_dir / "segmented.ply")
    ids, counts = np.unique(segments, return_counts=True)
    names = scene.classes
    summary = dict(info)
    summary["field"] = field
    summary["segments"] = {int(i): {"class": names.get(int(i), str(int(i))), "gaussians": int(k)}
                           for i, k in zip(ids, counts)}
    return summary
