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

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from coseg.gaussians import SH_C0
from coseg.segment.losses import kl_regulariser


@dataclass(frozen=True)
class IdentityFieldConfig:
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

    def to_dict(self) -> dict:
        return asdict(self)


class IdentityField(nn.Module):
    """Learnable identities [N, identity_dim] and a linear classifier to C classes."""

    def __init__(self, num_gaussians: int, num_classes: int,
                 config: IdentityFieldConfig = IdentityFieldConfig(), seed: int = 0) -> None:
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

    def regulariser(self, xyz: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Gaussian Grouping's 3D KNN regulariser, already multiplied by `reg_weight`.

        Args:
            xyz: [N, 3] Gaussian centres.
            rng: generator for the sampling.

        Returns:
            Scalar tensor.
        """
        c = self.config
        return c.reg_weight * kl_regulariser(self.gaussian_logits(), xyz, c.reg_samples, c.reg_k,
                                             rng, include_self=True)

    def param_groups(self) -> list[dict]:
        """Adam parameter groups with Gaussian Grouping's learning rates."""
        return [{"params": [self.identities], "lr": self.config.lr_identity},
                {"params": self.classifier.parameters(), "lr": self.config.lr_classifier}]
