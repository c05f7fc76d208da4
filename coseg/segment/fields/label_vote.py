"""Training-free reference field (`--field label-vote`): the raw labels voted onto the Gaussians.

Not part of CoSegGaussians: a baseline that tells how much of a learned
field's score the multi-view averaging of the labels alone already gives.
Every training label map is lifted onto the built Gaussians with the same
unprojection pass as the 2D features (paper Algorithm 1, one one-hot channel
per class): a Gaussian's score for class k is the alpha x transmittance
weighted fraction of its blended training pixels labelled k. Those fractions
are stored as its logits, so rendering them and taking the arg-max per pixel
(what `coseg eval` and the studio do with every field) gives the
weighted-majority label of the Gaussians under each pixel. The closed-form
label assignment of FlashSplat (Shen et al., ECCV 2024) is this vote with a
hard per-Gaussian arg-max.

Attendance-rate pruning uses the same rule as the learned fields, over the
labelled training views. Gaussians blended only into void (unlabelled) pixels
take the votes of their nearest voted neighbour. Nothing is learned: the
stage writes the usual `segmentation.npz`, `segmented.ply` and summary,
with 0 learnable parameters.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from coseg.errors import InputError
from coseg.segment.fields.base import Field

log = logging.getLogger(__name__)


def vote_labels(scene, cams, gaussians, tau: float, source=None) -> dict:
    """Unproject the one-hot training labels onto the Gaussians.

    Args:
        scene: the run's scene (labels are read from it).
        cams: training cameras (views without a label map are skipped).
        gaussians: the built Gaussians.
        tau: attendance-rate threshold (see `coseg.render.attendance_mask`).
        source: the raw labels (`coseg.segment.sources.TrainingLabels`; None: the scene's label maps).

    Returns:
        dict with ``votes`` [N_kept, C] float32 class fractions, ``kept`` [N_kept]
        int64 indices, ``labels`` (`LabelSet`), ``unproject_s``.

    Raises:
        InputError: no labels, one class only, or pruning removed every Gaussian.
    """
    from coseg.render import camera_tensors, gaussian_tensors, unproject_features
    from coseg.segment.infer import fill_from_nearest
    from coseg.segment.prepare import collect_labels, prune_by_attendance

    labels = collect_labels(scene, cams, source)
    load = scene.load_labels if source is None else source.load
    views = [cams[i] for i in labels.labelled]
    n_classes = len(labels.class_ids)

    def one_hot_maps() -> Iterator[np.ndarray]:
        for cam in views:
            index = labels.to_index(load(cam))
            out = np.zeros(index.shape + (n_classes,), np.float32)
            rows, cols = np.nonzero(index >= 0)
            out[rows, cols, index[rows, cols]] = 1.0
            yield out

    params = gaussian_tensors(gaussians)
    viewmats, Ks = zip(*(camera_tensors(c) for c in views))
    t0 = time.perf_counter()
    votes, counts = unproject_features(params["means"], params["quats"], params["scales"], params["opacities"],
                                       torch.stack(viewmats), torch.stack(Ks), views[0].width, views[0].height,
                                       one_hot_maps())
    unproject_s = time.perf_counter() - t0
    kept = prune_by_attendance(counts, tau, views)
    votes = np.asarray(votes[kept], np.float32)
    voted = votes.sum(1) > 0
    if not voted.any():
        raise InputError("no kept Gaussian is blended into a labelled pixel of any training view")
    filled = fill_from_nearest(votes, gaussians.means[kept], voted)
    if filled:
        log.info("%d kept Gaussians blended only into void pixels took their nearest neighbour's votes", filled)
    return {"votes": votes, "kept": kept.astype(np.int64), "labels": labels, "unproject_s": unproject_s}


@dataclass(frozen=True)
class LabelVoteConfig:
    """The label vote has no settings of its own (attendance pruning is the stage's)."""


class LabelVoteField(Field):
    """The vote behind the field interface: computed in `prepare`, nothing to train."""

    config_class = LabelVoteConfig
    trainable = False

    def prepare(self) -> Iterator[dict]:
        inputs = self.inputs
        yield {"stage": "vote", "views": len(inputs.cameras)}
        result = vote_labels(inputs.scene, inputs.cameras, inputs.gaussians, inputs.attendance_tau, inputs.labels)
        labels = result["labels"]
        self.kept, self.class_ids, self.votes = result["kept"], labels.class_ids, result["votes"]
        n = len(inputs.gaussians)
        self.info.update(feature_extractor="none (label vote)", learnable_params_mb=0.0, gaussians=n,
                         kept=int(len(self.kept)), pruned=int(n - len(self.kept)),
                         classes=[int(v) for v in labels.class_ids], labelled_views=len(labels.labelled),
                         views_without_labels=labels.missing, unproject_s=round(result["unproject_s"], 2))

    def infer(self) -> np.ndarray:
        """The class fractions of the vote."""
        return self.votes
