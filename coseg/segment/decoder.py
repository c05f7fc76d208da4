"""The fusion decoder (paper Eq. 7, Fig. 5): global-to-local aggregation of
unprojected 2D features f_dn and RandLA-Net spatial features f_sn.

    s = FC(f_d1 ⊕ f_s1 ⊕ US(MLP( … ⊕ US(MLP(f_d4 ⊕ f_s4 ⊕ US(f_e))))))

At level n = 4 … 1 the decoder concatenates [US(previous), f_dn, f_sn],
applies a shared MLP (Linear -> LayerNorm -> LeakyReLU(0.2); LayerNorm because
a batch is one view's points, and BatchNorm statistics of one view would leak
between views), then upsamples to level n-1 by inverse-distance KNN
interpolation (k_up neighbours, `Hierarchy.up_idx`). A final Linear maps the
level-1 output to one logit per class; the level-1 MLP plays the role of the
first of the paper's "shared FC layers".

Ablations: ``use_dino=False`` drops f_dn; ``use_spatial=False`` drops f_sn and
f_e (level 4 then starts from f_d4 alone); ``single_scale=True`` keeps only
level 1 (MLP(f_d1 ⊕ f_s1) -> FC, no global-to-local path).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from coseg.segment.knn import interpolate


@dataclass(frozen=True)
class DecoderConfig:
    """Shape and ablation switches of the fusion decoder."""

    num_classes: int
    """Logits per Gaussian (one per class id found in the labels)."""
    feature_dims: tuple[int, ...] = (64, 64, 64, 64)
    """Width of the unprojected features f_d1..f_d4 (64 after PCA)."""
    spatial_dims: tuple[int, ...] = (32, 128, 256, 512)
    """Width of f_s1..f_s4 (RandLA-Net block outputs)."""
    bottleneck_dim: int = 512
    """Width of f_e."""
    widths: tuple[int, ...] = (32, 64, 128, 256)
    """Output width of the shared MLP at levels 1..4 (not in the paper)."""
    use_dino: bool = True
    """False: the `--no-dino` ablation (drop f_dn)."""
    use_spatial: bool = True
    """False: the `--no-spatial` ablation (drop f_sn and f_e)."""
    single_scale: bool = False
    """True: the `--single-scale` ablation (level 1 only)."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FusionInputs:
    """Per-level inputs of one view's visible Gaussians (level n = index n-1)."""

    f_d: list[torch.Tensor] | None
    """4 tensors [P_n, feature_dims[n]]: unprojected features at level n's points."""
    f_s: list[torch.Tensor] | None
    """4 tensors [P_n, spatial_dims[n]] from the encoder."""
    f_e: torch.Tensor | None
    """[P_5, bottleneck_dim] from the encoder."""
    up_idx: list[torch.Tensor]
    """4 int64 tensors [P_n, k_up] into the next coarser set."""
    up_w: list[torch.Tensor]
    """4 float tensors [P_n, k_up] inverse-distance weights."""


def gather_fusion_inputs(hierarchy, encoded: dict | None, features: list[torch.Tensor] | None) -> FusionInputs:
    """Index per-Gaussian features at every level of a hierarchy.

    Args:
        hierarchy: `coseg.segment.randla.Hierarchy` of the visible Gaussians.
        encoded: the encoder's output dict (``f_s``, ``f_e``) or None.
        features: 4 tensors [P, D_n] of unprojected features of the visible
            Gaussians (the hierarchy's level-1 order), or None.

    Returns:
        `FusionInputs`.
    """
    f_d = None
    if features is not None:
        f_d = [features[n][torch.from_numpy(hierarchy.point_idx[n])] for n in range(4)]
    return FusionInputs(
        f_d=f_d,
        f_s=None if encoded is None else list(encoded["f_s"]),
        f_e=None if encoded is None else encoded["f_e"],
        up_idx=[torch.from_numpy(np.asarray(i)) for i in hierarchy.up_idx],
        up_w=[torch.from_numpy(np.asarray(w)) for w in hierarchy.up_w],
    )


def _mlp(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c_in, c_out), nn.LayerNorm(c_out), nn.LeakyReLU(0.2))


class FusionDecoder(nn.Module):
    """Multi-scale fusion decoder; the only learnable part of the CoSeg method."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        if not (config.use_dino or config.use_spatial):
            raise ValueError("the fusion decoder needs 2D features, spatial features or both "
                             "(use the per-Gaussian field for neither)")
        self.config = config
        levels = [0] if config.single_scale else [3, 2, 1, 0]
        mlps = {}
        for n in levels:
            c_in = 0
            if config.use_dino:
                c_in += config.feature_dims[n]
            if config.use_spatial:
                c_in += config.spatial_dims[n]
            if not config.single_scale:
                if n < 3:
                    c_in += config.widths[n + 1]
                elif config.use_spatial:
                    c_in += config.bottleneck_dim
            mlps[str(n + 1)] = _mlp(c_in, config.widths[n])
        self.mlps = nn.ModuleDict(mlps)
        self.head = nn.Linear(config.widths[0], config.num_classes)

    def _concat(self, inputs: FusionInputs, n: int, carried: torch.Tensor | None) -> torch.Tensor:
        parts = [] if carried is None else [carried]
        if self.config.use_dino:
            parts.append(inputs.f_d[n])
        if self.config.use_spatial:
            parts.append(inputs.f_s[n])
        return torch.cat(parts, dim=-1)

    def forward(self, inputs: FusionInputs) -> dict:
        """Decode logits for every level-1 point (every visible Gaussian).

        Args:
            inputs: `FusionInputs` of one point set.

        Returns:
            dict with ``logits`` [P_1, num_classes] and ``fused``: level (1..4) ->
            [P_n, widths[n-1]] shared-MLP outputs (levels 3 and 4 feed the 3D
            regulariser; only level 1 exists with ``single_scale``).
        """
        fused: dict[int, torch.Tensor] = {}
        if self.config.single_scale:
            fused[1] = self.mlps["1"](self._concat(inputs, 0, None))
            return {"logits": self.head(fused[1]), "fused": fused}
        carried = None
        if self.config.use_spatial:
            carried = interpolate(inputs.f_e, inputs.up_idx[3], inputs.up_w[3])
        for n in (3, 2, 1, 0):
            x = self.mlps[str(n + 1)](self._concat(inputs, n, carried))
            fused[n + 1] = x
            if n > 0:
                carried = interpolate(x, inputs.up_idx[n - 1], inputs.up_w[n - 1])
        return {"logits": self.head(fused[1]), "fused": fused}


def learnable_params_mb(module: nn.Module) -> float:
    """Learnable parameters as the paper reports them: count * 4 bytes / 2**20."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad) * 4 / 2**20
