"""Per-Gaussian identity field: the Gaussian Grouping baseline (`--field per-gaussian`).

Each Gaussian carries a learnable 16-d identity vector (Gaussian Grouping's
"identity encoding"). The trainer renders the identities like colours
(Eq. 3 with 16 channels) and this module classifies every rendered pixel
with a linear layer 16 -> C; the loss is cross-entropy plus Gaussian
Grouping's 3D regulariser: for M sampled Gaussians, the KL divergence between
the softmaxed classification of a Gaussian and that of each of its K nearest
Gaussians in 3D, averaged over the M K pairs. Gaussian Grouping's defaults
are kept: K = 5, M = 1000, weight 2.0, neighbours include the point itself,
identities initialised as the SH-DC coefficients of uniform [0, 1) values.
Gaussian Grouping additionally min-max normalises the regulariser inside a
batch; we use the plain mean KL (simplification, stated in docs/method.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import nn

from coseg.errors import InputError
from coseg.gaussians import SH_C0
from coseg.segment.fields.base import Field, render_channels
from coseg.segment.losses import ce_loss, kl_regulariser, neighbour_table


@dataclass(frozen=True)
class PerGaussianConfig:
    """Settings of the per-Gaussian baseline (Gaussian Grouping defaults)."""

    identity_dim: int = 16
    """Width of the per-Gaussian identity."""
    reg_k: int = 5
    """Neighbours of the 3D regulariser."""
    reg_samples: int = 1000
    """Sampled Gaussians M of the 3D regulariser."""
    reg_weight: float = 2.0
    """Weight of the 3D regulariser next to the cross-entropy."""
    lr_identity: float = 2.5e-3
    """Adam learning rate of the identities (Gaussian Grouping's feature lr)."""
    lr_classifier: float = 5e-4
    """Adam learning rate of the linear classifier."""


class IdentityField(nn.Module):
    """Learnable identities [N, identity_dim] and a linear classifier to C classes."""

    def __init__(self, num_gaussians: int, num_classes: int,
                 config: PerGaussianConfig = PerGaussianConfig(), seed: int = 0) -> None:
        super().__init__()
        self.config = config
        gen = torch.Generator().manual_seed(seed)
        uniform = torch.rand(num_gaussians, config.identity_dim, generator=gen)
        self.identities = nn.Parameter((uniform - 0.5) / SH_C0)
        self.classifier = nn.Linear(config.identity_dim, num_classes)

    def classify(self, rendered: torch.Tensor) -> torch.Tensor:
        """Logits of rendered identities.

        Args:
            rendered: [..., identity_dim] rendered identity per pixel (or per Gaussian).

        Returns:
            [..., num_classes] logits.
        """
        return self.classifier(rendered)

    def gaussian_logits(self) -> torch.Tensor:
        """[N, num_classes] logits of every Gaussian's own identity (for export)."""
        return self.classifier(self.identities)

    def regulariser(self, visible: torch.Tensor, xyz: np.ndarray, rng: np.random.Generator,
                    neighbours: np.ndarray | None = None) -> torch.Tensor:
        """Gaussian Grouping's 3D KNN regulariser over a set of Gaussians, already multiplied by `reg_weight`.

        Args:
            visible: [P] int64 indices of the Gaussians (one view's visible set).
            xyz: [P, 3] their centres.
            rng: generator for the sampling.
            neighbours: optional [P, reg_k] `neighbour_table` of those centres (self included).

        Returns:
            Scalar tensor.
        """
        c = self.config
        return c.reg_weight * kl_regulariser(self.classify(self.identities[visible]), xyz, c.reg_samples,
                                             c.reg_k, rng, include_self=True, neighbours=neighbours)

    def param_groups(self) -> list[dict]:
        """Adam parameter groups with Gaussian Grouping's learning rates."""
        return [{"params": [self.identities], "lr": self.config.lr_identity},
                {"params": self.classifier.parameters(), "lr": self.config.lr_classifier}]


class PerGaussianField(Field):
    """The Gaussian Grouping baseline behind the field interface: one view's visible Gaussians per step."""

    config_class = PerGaussianConfig

    def prepare(self) -> Iterator[dict]:
        """Labels, attendance pruning (no features: identities are free), visible sets, the identities."""
        from coseg.render import gaussian_tensors
        from coseg.segment.decoder import learnable_params_mb
        from coseg.segment.prepare import (attendance_counts, collect_labels, kept_tensors, label_index_maps,
                                           prune_by_attendance, visible_sets)

        scene, gaussians = self.inputs.scene, self.inputs.gaussians
        self.cams = self.inputs.cameras
        labels = collect_labels(scene, self.cams, self.inputs.labels)
        self.class_ids = labels.class_ids
        self.label_maps = label_index_maps(scene, self.cams, labels, self.inputs.labels)
        params = gaussian_tensors(gaussians)
        yield {"stage": "attendance", "views": len(self.cams)}
        self.kept = prune_by_attendance(attendance_counts(self.cams, params), self.inputs.attendance_tau, self.cams)
        self.params = kept_tensors(params, self.kept)
        self.xyz = self.params["means"].numpy()
        self.views: list[tuple[int, np.ndarray, np.ndarray]] = []
        for j, i, vis in visible_sets(self.cams, self.params, labels.labelled):
            if len(vis) >= 2:
                table = neighbour_table(self.xyz[vis], self.config.reg_k, include_self=True).astype(np.int32)
                self.views.append((i, vis, table))
            yield {"stage": "visible", "view": j + 1, "views": len(labels.labelled)}
        if not self.views:
            raise InputError(f"{self.inputs.run.path}: no labelled training view sees any Gaussian")
        self.identity = IdentityField(len(self.kept), len(self.class_ids), self.config, seed=self.inputs.seed)
        self.info.update(gaussians=len(gaussians), kept=int(len(self.kept)),
                         pruned=int(len(gaussians) - len(self.kept)),
                         feature_extractor="none (per-Gaussian identities)",
                         learnable_params_mb=round(learnable_params_mb(self.identity), 4),
                         classes=[int(v) for v in self.class_ids], labelled_views=len(labels.labelled),
                         views_without_labels=labels.missing)

    def param_groups(self) -> list[dict]:
        return self.identity.param_groups()

    @property
    def num_views(self) -> int:
        return len(self.views)

    def train_step(self, view: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy of the classified rendered identities + the 3D regulariser on the visible set."""
        cam_index, visible, neighbours = self.views[view]
        f = self.identity
        labels = self.label_maps[cam_index].reshape(-1)
        idx = torch.from_numpy(visible)
        rendered = render_channels(self.params, self.cams[cam_index], visible, f.identities[idx])
        probs = torch.softmax(f.classify(rendered), dim=-1).reshape(-1, len(self.class_ids))
        pix = ce_loss(probs, labels, ignore_index=-1)
        reg = f.regulariser(idx, self.xyz[visible], self.rng, neighbours)
        loss = pix + reg
        return loss, {"pix": float(pix.detach()), "reg": float(reg.detach())}

    @torch.no_grad()
    def infer(self) -> np.ndarray:
        """Every Gaussian's own identity, classified."""
        return self.identity.gaussian_logits().numpy().astype(np.float32)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "identity": self.identity.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.identity.load_state_dict(state["identity"])
