"""Metrics of the hard per-Gaussian segment ids the studio and the exporters use.

`coseg eval` scores the soft rendering (per pixel, the arg-max of the blended
logits). What a user selects, edits and exports is each Gaussian's own
arg-max segment, so two more measures look at those hard ids:

- hard-id mIoU: every Gaussian carries a one-hot vector of its segment, the
  view is rendered from those (Eq. 3) and the arg-max per pixel is scored
  like the soft rendering;
- compactness: each Gaussian gets a ground-truth class, the arg-max of the
  training views' ground-truth maps unprojected onto it (paper Algorithm 1,
  one one-hot channel per class, as the label vote does). ``object_share``
  is the mean over ground-truth classes of the share of the class's
  Gaussians in the class's majority segment (is an object one segment?);
  ``segment_share`` is the mean over segments of the share of the segment's
  Gaussians inside the segment's majority ground-truth class (does a segment
  stay inside one object?). A reduced version: the scene folders hold
  semantic ground truth only, so the objects are ground-truth classes, not
  instances (segments are semantic classes too, so a segment may rightly
  span several instances of one class);
- neighbour agreement: the share of (Gaussian, neighbour) pairs, over every
  Gaussian's K nearest Gaussians in 3D, whose hard ids agree. It needs no
  ground truth and measures what the 3D regulariser (Eq. 9) is for: whether
  neighbouring Gaussians end up in one segment (a speckled field scores low).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch


def hard_id_colors(logits: torch.Tensor) -> torch.Tensor:
    """[N, C] one-hot float32 of every Gaussian's arg-max class (the channels that render its hard id)."""
    out = torch.zeros_like(logits, dtype=torch.float32)
    out[torch.arange(len(logits)), logits.argmax(1)] = 1.0
    return out


def gaussian_gt_classes(params: dict, cams, scene, n_classes: int, frame) -> np.ndarray:
    """[N] int64 ground-truth class of every Gaussian (-1: blended into no ground-truth pixel).

    Args:
        params: activated Gaussian tensors in the run's working frame (`SegmentedRun.params`).
        cams: the views whose ground-truth maps are unprojected (views without one are skipped).
        scene: the scene (`load_gt`).
        n_classes: label ids are 0..n_classes-1 (others, e.g. 255 void, are ignored).
        frame: the run's working frame (`coseg.normalize.recorded_frame`), cameras come in the input frame.
    """
    from coseg.render import camera_tensors, unproject_features

    views = [c for c in cams if c.gt_path is not None]
    n = params["means"].shape[0]
    if not views:
        return np.full(n, -1, np.int64)

    def one_hot() -> Iterator[np.ndarray]:
        for cam in views:
            gt = np.asarray(scene.load_gt(cam), np.int64)
            out = np.zeros(gt.shape + (n_classes,), np.float32)
            rows, cols = np.nonzero((gt >= 0) & (gt < n_classes))
            out[rows, cols, gt[rows, cols]] = 1.0
            yield out

    viewmats, Ks = zip(*(camera_tensors(frame.apply_camera(c)) for c in views))
    votes, _ = unproject_features(params["means"], params["quats"], params["scales"], params["opacities"],
                                  torch.stack(viewmats), torch.stack(Ks), views[0].width, views[0].height, one_hot())
    gt = np.argmax(votes, axis=1).astype(np.int64)
    gt[votes.max(axis=1) <= 0] = -1
    return gt


def compactness(segments: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Object and segment shares of hard segment ids against per-Gaussian ground truth.

    Args:
        segments: [N] int segment id of every Gaussian.
        gt: [N] int ground-truth class of every Gaussian (-1: unknown, left out).

    Returns:
        {"object_share", "segment_share"} in [0, 1] (NaN when no Gaussian has a ground truth),
        and "gaussians_with_gt".
    """
    have = gt >= 0
    s, g = np.asarray(segments)[have].astype(np.int64), np.asarray(gt)[have].astype(np.int64)
    if len(g) == 0:
        return {"object_share": float("nan"), "segment_share": float("nan"), "gaussians_with_gt": 0}
    _, s_idx = np.unique(s, return_inverse=True)
    _, g_idx = np.unique(g, return_inverse=True)
    table = np.zeros((g_idx.max() + 1, s_idx.max() + 1), np.int64)
    np.add.at(table, (g_idx, s_idx), 1)
    object_share = table.max(1) / table.sum(1)
    segment_share = table.max(0) / table.sum(0)
    return {"object_share": float(object_share.mean()), "segment_share": float(segment_share.mean()),
            "gaussians_with_gt": int(len(g))}


def neighbour_agreement(xyz: np.ndarray, segments: np.ndarray, k: int = 8) -> float:
    """Share of (Gaussian, neighbour) pairs with the same hard id, over each Gaussian's `k` nearest.

    Args:
        xyz: [N, 3] Gaussian centres.
        segments: [N] int hard segment id of every Gaussian.
        k: neighbours per Gaussian (itself excluded; clamped to N - 1).

    Returns:
        The share in [0, 1] (NaN for fewer than 2 Gaussians).
    """
    from coseg.segment.losses import neighbour_table

    segments = np.asarray(segments)
    if len(segments) < 2:
        return float("nan")
    table = neighbour_table(np.asarray(xyz, np.float64), k)
    return float((segments[table] == segments[:, None]).mean())
