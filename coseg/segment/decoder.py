"""The fusion decoder (paper Eq. 7, Fig. 5): global-to-local aggregation of
unprojected 2D features f_dn and RandLA-Net spatial features f_sn.

    s = FC(f_d1 ⊕ f_s1 ⊕ US(MLP( … ⊕ US(MLP(f_d4 ⊕ f_s4 ⊕ US(f_e))))))

At level n = 4 … 1 the decoder concatenates [US(previous), f_dn, f_sn],
applies a shared MLP (Linear -> LayerNorm -> LeakyReLU(0.2); LayerNorm because
it normalises each point on its own, so a point's output does not depend on
which other points are decoded with it), then upsamples to level n-1 by
inverse-distance KNN interpolation (k_up neighbours, `Hierarchy.up_idx`,
applied as a fixed sparse map, `coseg.segment.sparse`). A final Linear maps
the level-1 output to one logit per class; the level-1 MLP plays the role of
the first of the paper's "shared FC layers".

Everything but US(previous) is frozen, so each level's inputs are packed once
into one frozen block [f_dn ⊕ f_sn (⊕ US(f_e) at level 4)] (`FusionInputs`)
and the MLP's first Linear is split into a part on the frozen block and a
bias-free part on US(previous): the same function as one Linear on the
concatenation, without back-propagating into inputs that do not learn.
Because every operation is per point or a fixed map from the coarser level,
decoding a subset of the points with the coarser points its upsampling reads
(`DecodePlan`) gives exactly the values a decoding of every point gives.

Ablations: ``use_dino=False`` drops f_dn; ``use_spatial=False`` drops f_sn and
f_e (level 4 then starts from f_d4 alone); ``single_scale=True`` keeps only
level 1 (MLP(f_d1 ⊕ f_s1) -> FC, no global-to-local path).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from coseg.segment.sparse import SparseRows, apply


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

    def frozen_dim(self, n: int) -> int:
        """Width of level n's (0-based) frozen block."""
        d = (self.feature_dims[n] if self.use_dino else 0) + (self.spatial_dims[n] if self.use_spatial else 0)
        if n == 3 and self.use_spatial:
            d += self.bottleneck_dim
        return d


@dataclass
class FusionInputs:
    """The decoder's inputs for one point set (level n at index n-1)."""

    frozen: list[torch.Tensor]
    """4 tensors [P_n, D_n]: each level's frozen block f_dn ⊕ f_sn (⊕ US(f_e) at level 4)."""
    up: list[SparseRows]
    """3 maps [P_n, P_{n+1}] (n = 1..3): inverse-distance KNN upsampling from the next coarser level."""

    def take(self, plan: "DecodePlan") -> "FusionInputs":
        """The inputs of a `DecodePlan`'s points only."""
        # index_select: several times faster than advanced indexing for row gathers on the CPU
        return FusionInputs([f.index_select(0, torch.from_numpy(s)) for f, s in zip(self.frozen, plan.sets)],
                            plan.up)


@dataclass
class DecodePlan:
    """Which points of every level a decoding of some level-1 points needs."""

    sets: list[np.ndarray]
    """4 int64 arrays: indices of the points decoded at levels 1..4 (level 1 = the requested points)."""
    up: list[SparseRows]
    """The upsampling maps between those subsets (columns renumbered to the coarser subset)."""

    @classmethod
    def for_points(cls, inputs: FusionInputs, points: np.ndarray) -> "DecodePlan":
        """The plan that decodes level-1 `points` (int indices) of `inputs`."""
        sets, ups = [np.asarray(points, np.int64)], []
        for up in inputs.up:
            used, rows = up.rows(sets[-1]).compacted()
            ups.append(rows)
            sets.append(used)
        return cls(sets, ups)


def gather_fusion_inputs(hierarchy, encoded: dict | None, features: list[torch.Tensor] | None) -> FusionInputs:
    """Pack the frozen per-level inputs of a hierarchy's points.

    Args:
        hierarchy: `coseg.segment.randla.Hierarchy` of the point set.
        encoded: the encoder's output dict (``f_s``, ``f_e``) or None (no spatial features).
        features: 4 tensors [P, D_n] of unprojected features of the points (the
            hierarchy's level-1 order), or None (no 2D features).

    Returns:
        `FusionInputs`.
    """
    up = [SparseRows.from_neighbours(np.asarray(i), np.asarray(w), len(hierarchy.xyz[n + 1]))
          for n, (i, w) in enumerate(zip(hierarchy.up_idx, hierarchy.up_w))]
    frozen = []
    for n in range(4):
        parts = []
        if features is not None:
            parts.append(features[n][torch.from_numpy(hierarchy.point_idx[n])].float())
        if encoded is not None:
            parts.append(encoded["f_s"][n].float())
            if n == 3:
                parts.append(apply(up[3], encoded["f_e"].float()))
        frozen.append(torch.cat(parts, dim=-1))
    return FusionInputs(frozen, up[:3])


class _Level(nn.Module):
    """One shared MLP: LeakyReLU(LayerNorm(Linear(frozen) + Linear(US(previous)))), the second without bias."""

    def __init__(self, frozen_dim: int, carried_dim: int, width: int) -> None:
        super().__init__()
        self.frozen = nn.Linear(frozen_dim, width)
        self.carried = nn.Linear(carried_dim, width, bias=False) if carried_dim else None
        self.norm = nn.LayerNorm(width)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, frozen: torch.Tensor, carried: torch.Tensor | None) -> torch.Tensor:
        x = self.frozen(frozen)
        if self.carried is not None:
            x = x + self.carried(carried)
        return self.act(self.norm(x))


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
            carried = config.widths[n + 1] if (n < 3 and not config.single_scale) else 0
            mlps[str(n + 1)] = _Level(config.frozen_dim(n), carried, config.widths[n])
        self.mlps = nn.ModuleDict(mlps)
        self.head = nn.Linear(config.widths[0], config.num_classes)

    def forward(self, inputs: FusionInputs) -> dict:
        """Decode logits for every level-1 point of `inputs`.

        Args:
            inputs: `FusionInputs` of one point set (or of a `DecodePlan`'s subset).

        Returns:
            dict with ``logits`` [P_1, num_classes] and ``fused``: level (1..4) ->
            [P_n, widths[n-1]] shared-MLP outputs (levels 3 and 4 feed the 3D
            regulariser; only level 1 exists with ``single_scale``).
        """
        for n, block in enumerate(inputs.frozen[:1] if self.config.single_scale else inputs.frozen):
            if block.shape[1] != self.config.frozen_dim(n):
                raise ValueError(f"fusion decoder: level {n + 1} takes {self.config.frozen_dim(n)} frozen channels, "
                                 f"got {block.shape[1]} (inputs packed for other features or ablation switches)")
        fused: dict[int, torch.Tensor] = {}
        if self.config.single_scale:
            fused[1] = self.mlps["1"](inputs.frozen[0], None)
            return {"logits": self.head(fused[1]), "fused": fused}
        x = None
        for n in (3, 2, 1, 0):
            carried = None if x is None else apply(inputs.up[n], x)
            x = self.mlps[str(n + 1)](inputs.frozen[n], carried)
            fused[n + 1] = x
        return {"logits": self.head(fused[1]), "fused": fused}


def learnable_params_mb(module: nn.Module) -> float:
    """Learnable parameters as the paper reports them: count * 4 bytes / 2**20."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad) * 4 / 2**20
