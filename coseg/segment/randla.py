"""RandLA-Net encoder (Hu et al., CVPR 2020), the frozen spatial feature extractor.

Architecture (as published and as in the official TF code): fc0 to 8
channels + BN + LeakyReLU, then 4 dilated residual blocks. Each block: mlp1
(d_in -> d_out/2), two rounds of local spatial encoding (LSE, the 10-d
relative position code [||pi-pk||, pi-pk, pi, pk] -> MLP) + attentive pooling
(shared FC -> softmax over the K neighbours -> weighted sum -> MLP), mlp2
(d_out -> 2 d_out) plus a shortcut (d_in -> 2 d_out), LeakyReLU. Between
blocks, random sampling (RS) keeps 1/4 of the points, and each kept point
takes the max of its K neighbours' features (the official ``random_sample``).
K = 16, ratios 4,4,4,4, d_out 16/64/128/256, so block outputs have 32, 128,
256, 512 channels; a bottleneck MLP on the last sampled set gives f_e.

Levels. Level n (1..4) is the point set that block n runs on: level 1 is every
input point, level n+1 is a random quarter of level n, and f_e sits on a fifth
set (1/256 of the input). f_sn is block n's output on level n's points, i.e.
the feature that RS then pools for level n+1 (the paper's Eq. 6 writes
RS(LFA_n(..)); we take f_sn just before its RS so that f_sn sits on the same
points as the unprojected f_dn and the decoder's last layer lands on every
Gaussian, as in RandLA-Net-pytorch's skip list). Every level's points are a
subset of the input, recorded in ``Hierarchy.point_idx``.

Two weight layouts differ in small details and are both supported:
``open3d`` (Open3D-ML torch RandLANet, identical to the official TF: the second
LSE re-encodes the first LSE's encoded positions; BN after every MLP) and
``ari0u`` (RandLA-Net-pytorch: each LSE encodes the raw 10-d code, code order
[pi, pk, pi-pk, ||pi-pk||], ReLU and fewer BNs). Our own weights use ``open3d``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coseg.segment.knn import inverse_distance_weights, knn_indices

_LAYOUTS = {
    # (bn, activation) per MLP kind, plus structural switches.
    "open3d": dict(mlp1=(True, "lrelu"), lse=(True, "lrelu"), pool=(True, "lrelu"),
                   mlp2=(True, None), shortcut=(True, None), bottleneck=(True, "lrelu"),
                   score_bias=True, lse2_raw=False, code_order="paper"),
    "ari0u": dict(mlp1=(False, "lrelu"), lse=(True, "relu"), pool=(True, "relu"),
                  mlp2=(False, None), shortcut=(True, None), bottleneck=(False, "relu"),
                  score_bias=False, lse2_raw=True, code_order="ari0u"),
}


@dataclass(frozen=True)
class RandLAConfig:
    """Shape of a RandLA-Net encoder."""

    in_channels: int = 3
    """3 (xyz, our default) or 6 (xyz + rgb, as S3DIS checkpoints expect)."""
    d_feature: int = 8
    """Width of fc0."""
    d_out: tuple[int, ...] = (16, 64, 128, 256)
    """d_out of the 4 dilated residual blocks; block outputs are 2 * d_out."""
    k: int = 16
    """Neighbours of the local spatial encoding and of the RS max-pooling."""
    ratios: tuple[int, ...] = (4, 4, 4, 4)
    """Random-sampling ratio after each block."""
    layout: str = "open3d"
    """Weight layout: "open3d" or "ari0u" (see module docstring)."""
    set_norm: bool = False
    """Normalise every BatchNorm with the statistics of the encoded point set
    itself (affine kept, running statistics unused), as in training. Our own
    weights need it: their running statistics do not match single crops.
    External S3DIS checkpoints use their running statistics (False)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def level_channels(self) -> list[int]:
        """Channels of f_s1..f_s4."""
        return [2 * d for d in self.d_out]

    @property
    def bottleneck_channels(self) -> int:
        return 2 * self.d_out[-1]


def _activation(kind: str | None) -> nn.Module:
    if kind == "lrelu":
        return nn.LeakyReLU(0.2)
    if kind == "relu":
        return nn.ReLU()
    return nn.Identity()


class SharedMLP(nn.Module):
    """Linear (a 1x1 convolution) + optional BatchNorm + activation on the last dim."""

    def __init__(self, c_in: int, c_out: int, bn: bool, act: str | None, set_norm: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(c_in, c_out)
        self.bn = nn.BatchNorm1d(c_out, eps=1e-6) if bn else None
        self.act = _activation(act)
        self.set_norm = set_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., c_in] -> [..., c_out]."""
        y = self.fc(x)
        if self.bn is not None:
            y = _batch_norm(self.bn, y.reshape(-1, y.shape[-1]), self.set_norm).reshape(y.shape)
        return self.act(y)


def _batch_norm(bn: nn.BatchNorm1d, x: torch.Tensor, set_norm: bool) -> torch.Tensor:
    """BatchNorm over rows of x [M, C]; with `set_norm` outside training, the set's own statistics.

    A set of a single row has no statistics; it uses the running ones.
    """
    if set_norm and not bn.training and x.shape[0] > 1:
        return F.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
    return bn(x)


class AttentivePooling(nn.Module):
    """Softmax-weighted sum over the K neighbours followed by a shared MLP."""

    def __init__(self, c_in: int, c_out: int, spec: dict) -> None:
        super().__init__()
        self.score = nn.Linear(c_in, c_in, bias=spec["score_bias"])
        self.mlp = SharedMLP(c_in, c_out, *spec["pool"], spec["set_norm"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [P, K, c_in] -> [P, c_out]."""
        scores = torch.softmax(self.score(x), dim=1)
        return self.mlp((scores * x).sum(1))


class DilatedResidualBlock(nn.Module):
    """One RandLA-Net encoder block: LFA (2 x LSE + attentive pooling) with a shortcut."""

    def __init__(self, d_in: int, d_out: int, spec: dict) -> None:
        super().__init__()
        self.spec = spec
        half = d_out // 2
        sn = spec["set_norm"]
        self.mlp1 = SharedMLP(d_in, half, *spec["mlp1"], sn)
        self.lse1 = SharedMLP(10, half, *spec["lse"], sn)
        self.pool1 = AttentivePooling(d_out, half, spec)
        self.lse2 = SharedMLP(10 if spec["lse2_raw"] else half, half, *spec["lse"], sn)
        self.pool2 = AttentivePooling(d_out, d_out, spec)
        self.mlp2 = SharedMLP(d_out, 2 * d_out, *spec["mlp2"], sn)
        self.shortcut = SharedMLP(d_in, 2 * d_out, *spec["shortcut"], sn)
        self.out_act = nn.LeakyReLU(0.01)

    def forward(self, xyz: torch.Tensor, feat: torch.Tensor, neigh: torch.Tensor) -> torch.Tensor:
        """xyz [P, 3], feat [P, d_in], neigh [P, K] -> [P, 2 d_out]."""
        code = relative_position_code(xyz, neigh, self.spec["code_order"])
        pos1 = self.lse1(code)
        x = self.mlp1(feat)
        x = self.pool1(torch.cat([x[neigh], pos1], dim=-1))
        pos2 = self.lse2(code if self.spec["lse2_raw"] else pos1)
        x = self.pool2(torch.cat([x[neigh], pos2], dim=-1))
        return self.out_act(self.mlp2(x) + self.shortcut(feat))


def relative_position_code(xyz: torch.Tensor, neigh: torch.Tensor, order: str = "paper") -> torch.Tensor:
    """The 10-d relative point position code of every point and neighbour.

    Args:
        xyz: [P, 3] positions.
        neigh: [P, K] neighbour indices.
        order: "paper" [||pi-pk||, pi-pk, pi, pk] or "ari0u" [pi, pk, pi-pk, ||pi-pk||].

    Returns:
        [P, K, 10].
    """
    pk = xyz[neigh]
    pi = xyz.unsqueeze(1).expand_as(pk)
    rel = pi - pk
    dist = rel.norm(dim=-1, keepdim=True)
    parts = [dist, rel, pi, pk] if order == "paper" else [pi, pk, rel, dist]
    return torch.cat(parts, dim=-1)


@dataclass
class Hierarchy:
    """Neighbourhoods and random sampling of one point set (numpy, no autograd).

    Level n = 1..4 runs block n; index 4 of the lists (the fifth set) carries f_e.
    """

    xyz: list[np.ndarray]
    """5 arrays [P_n, 3] (float32): the points of levels 1..4 and the bottleneck set."""
    point_idx: list[np.ndarray]
    """5 arrays [P_n] int64: indices of each set's points into the input points."""
    neigh_idx: list[np.ndarray]
    """4 arrays [P_n, K]: K nearest neighbours within level n (self included)."""
    sub_idx: list[np.ndarray]
    """4 arrays [P_{n+1}]: which level-n points form the next set."""
    up_idx: list[np.ndarray] = field(default_factory=list)
    """4 arrays [P_n, k_up]: nearest points of the next (coarser) set, per level-n point."""
    up_w: list[np.ndarray] = field(default_factory=list)
    """4 arrays [P_n, k_up] float32 inverse-distance weights matching `up_idx`."""


def build_hierarchy(xyz: np.ndarray, k: int = 16, ratios=(4, 4, 4, 4), k_up: int = 3,
                    rng: np.random.Generator | None = None) -> Hierarchy:
    """Random sampling + KNN neighbourhoods for RandLA-Net and the fusion decoder.

    Args:
        xyz: [P, 3] point positions (P >= 1).
        k: neighbours per point for the LSE / RS pooling.
        ratios: 4 sampling ratios; each set keeps ceil(P_n / ratio) points.
        k_up: neighbours of the decoder's inverse-distance upsampling.
        rng: generator for the random sampling (default: seeded 0).

    Returns:
        The `Hierarchy`.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    pts = np.asarray(xyz, np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] == 0:
        raise ValueError(f"build_hierarchy expects [P>0, 3] points, got {pts.shape}")
    h = Hierarchy(xyz=[pts], point_idx=[np.arange(len(pts), dtype=np.int64)], neigh_idx=[], sub_idx=[])
    for ratio in ratios:
        cur = h.xyz[-1]
        h.neigh_idx.append(knn_indices(cur, cur, k))
        keep = np.sort(rng.choice(len(cur), size=-(-len(cur) // ratio), replace=False))
        h.sub_idx.append(keep)
        h.xyz.append(cur[keep])
        h.point_idx.append(h.point_idx[-1][keep])
        idx, w = inverse_distance_weights(cur, h.xyz[-1], k_up)
        h.up_idx.append(idx)
        h.up_w.append(w)
    return h


class RandLAEncoder(nn.Module):
    """RandLA-Net encoder: f_s1..f_s4 and f_e for a point set (frozen in use)."""

    def __init__(self, config: RandLAConfig = RandLAConfig()) -> None:
        super().__init__()
        if config.layout not in _LAYOUTS:
            raise ValueError(f"unknown RandLA-Net layout {config.layout!r} (known: {', '.join(_LAYOUTS)})")
        if len(config.d_out) != len(config.ratios):
            raise ValueError("RandLAConfig: d_out and ratios must have the same length")
        self.config = config
        spec = {**_LAYOUTS[config.layout], "set_norm": config.set_norm}
        self.fc0 = nn.Linear(config.in_channels, config.d_feature)
        self.bn0 = nn.BatchNorm1d(config.d_feature, eps=1e-6)
        self.act0 = nn.LeakyReLU(0.2)
        blocks, d_in = [], config.d_feature
        for d in config.d_out:
            blocks.append(DilatedResidualBlock(d_in, d, spec))
            d_in = 2 * d
        self.blocks = nn.ModuleList(blocks)
        self.bottleneck = SharedMLP(d_in, d_in, *spec["bottleneck"], config.set_norm)

    def freeze(self) -> "RandLAEncoder":
        """Eval mode and no gradients (the encoder is frozen during segmentation)."""
        self.eval()
        self.requires_grad_(False)
        return self

    def forward(self, hierarchy: Hierarchy, colors: np.ndarray | None = None) -> dict:
        """Encode the points of `hierarchy`.

        Args:
            hierarchy: from `build_hierarchy`.
            colors: [P, 3] colours in [0, 1], needed when in_channels == 6.

        Returns:
            dict with ``f_s``: 4 tensors [P_n, 2 d_out_n] and ``f_e`` [P_5, 2 d_out_4].
        """
        xyz = hierarchy.xyz[0]
        # Centred coordinates: the encoder sees the visible set, not the world origin.
        centred = xyz - xyz.mean(0, keepdims=True)
        feat = centred
        if self.config.in_channels == 6:
            if colors is None:
                raise ValueError("this RandLA-Net encoder takes xyz + rgb; pass colors")
            feat = np.concatenate([centred, np.asarray(colors, np.float32)], axis=1)
        elif self.config.in_channels != 3:
            raise ValueError(f"unsupported RandLA-Net input width {self.config.in_channels}")
        x = self.fc0(torch.from_numpy(np.ascontiguousarray(feat, np.float32)))
        x = self.act0(_batch_norm(self.bn0, x, self.config.set_norm))
        f_s = []
        for n, block in enumerate(self.blocks):
            pts = torch.from_numpy(hierarchy.xyz[n] - xyz.mean(0, keepdims=True))
            neigh = torch.from_numpy(hierarchy.neigh_idx[n])
            x = block(pts, x, neigh)
            f_s.append(x)
            pool = torch.from_numpy(hierarchy.neigh_idx[n][hierarchy.sub_idx[n]])
            x = x[pool].amax(1)
        return {"f_s": f_s, "f_e": self.bottleneck(x)}

    @torch.no_grad()
    def encode(self, xyz: np.ndarray, colors: np.ndarray | None = None, k_up: int = 3,
               rng: np.random.Generator | None = None, scale: float = 1.0) -> dict:
        """Sample, encode and package one point set for the fusion decoder.

        Args:
            xyz: [P, 3] positions (e.g. one view's visible Gaussians).
            colors: [P, 3] optional colours (in_channels == 6 only).
            k_up: neighbours of the decoder's upsampling.
            rng: generator for the random sampling.
            scale: factor applied to the positions before encoding, to bring
                the scene to roughly metres (the units RandLA-Net weights were
                trained in); neighbourhoods and sampling do not depend on it.

        Returns:
            dict(levels=[(xyz_n [P_n, 3], f_sn [P_n, c_n]) for n = 1..4],
            f_s (the same f_sn list), f_e [P_5, c], hierarchy=Hierarchy, sub_idx,
            up_idx, up_w).
        """
        h = build_hierarchy(xyz, self.config.k, self.config.ratios, k_up, rng)
        if scale != 1.0:
            h_scaled = Hierarchy(xyz=[x * np.float32(scale) for x in h.xyz], point_idx=h.point_idx,
                                 neigh_idx=h.neigh_idx, sub_idx=h.sub_idx)
        else:
            h_scaled = h
        out = self.forward(h_scaled, None if colors is None else np.asarray(colors)[h.point_idx[0]])
        return {
            "levels": list(zip(h.xyz[:4], out["f_s"])),
            "f_s": out["f_s"],
            "f_e": out["f_e"],
            "hierarchy": h,
            "sub_idx": h.sub_idx,
            "up_idx": h.up_idx,
            "up_w": h.up_w,
        }
