"""Segment Anything's image encoder (a ViTDet-style ViT) in plain torch.

Architecture of the official ViT-B/L/H encoders (Kirillov et al. 2023), with
module names that match the official checkpoints' keys under
``image_encoder.``:

- ``patch_embed.proj``: a stride-16 convolution, 3 -> D channels, on the
  1024 x 1024 padded input; ``pos_embed`` [1, 64, 64, D] is added.
- ``blocks.i``: pre-norm blocks (``norm1``, ``attn.qkv``, ``attn.proj``,
  ``norm2``, ``mlp.lin1``, ``mlp.lin2``, GELU). Most attend inside 14 x 14
  windows (the token grid zero-padded to a multiple of 14); a few
  ("global" blocks) attend over the whole grid. Every attention adds
  decomposed relative position terms (``attn.rel_pos_h``, ``attn.rel_pos_w``,
  [2 S - 1, head dim] for a window or grid of side S): the logit of query
  (y, x) and key (y', x') gains q . R_h[y - y'] + q . R_w[x - x'].
- ``neck``: 1x1 conv (no bias) -> LayerNorm2d -> 3x3 conv (no bias) ->
  LayerNorm2d, to 256 channels: the [256, 64, 64] image embedding.

Everything about the architecture is read from a checkpoint's shapes
(`coseg.labelgen.sam_weights`), so tiny test models use the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of a SAM image encoder."""

    dim: int = 768
    """Token width D (ViT-B 768, ViT-L 1024, ViT-H 1280)."""
    depth: int = 12
    """Transformer blocks (12, 24, 32)."""
    heads: int = 12
    """Attention heads (12, 16, 16)."""
    global_blocks: tuple[int, ...] = (2, 5, 8, 11)
    """0-based blocks with global attention; the others attend within windows."""
    window: int = 14
    """Side of the attention windows, in tokens."""
    image_size: int = 1024
    """Side of the square, padded model input in pixels."""
    patch: int = 16
    """Patch size (the stride of the patch embedding)."""
    out_dim: int = 256
    """Channels of the image embedding (the prompt embedding width)."""
    mlp_ratio: float = 4.0
    """Hidden width of the MLPs / D."""

    @property
    def grid(self) -> int:
        """Side of the token grid (64 for the official models)."""
        return self.image_size // self.patch


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a [B, C, H, W] map (eps 1e-6, as SAM)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class MLPBlock(nn.Module):
    """lin1 -> activation -> lin2 (SAM's ``MLPBlock``)."""

    def __init__(self, dim: int, hidden: int, act=nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


def _relative_table(rel_pos: torch.Tensor, size: int) -> torch.Tensor:
    """[size, size, head_dim]: entry (i, j) is the embedding of offset i - j.

    A table trained for another side length is resampled linearly first (as the
    official code does when a block sees a grid of another size).
    """
    n = 2 * size - 1
    if rel_pos.shape[0] != n:
        rel_pos = F.interpolate(rel_pos.T[None], size=n, mode="linear")[0].T
    offsets = torch.arange(size)[:, None] - torch.arange(size)[None, :] + (size - 1)
    return rel_pos[offsets]


class Attention(nn.Module):
    """Multi-head self-attention over a [B, S_h, S_w, D] token grid with relative positions."""

    def __init__(self, dim: int, heads: int, side: int) -> None:
        super().__init__()
        self.heads = heads
        head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * side - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * side - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, d = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, heads, h*w, head_dim]
        rh = _relative_table(self.rel_pos_h, h)  # [h, h, c]
        rw = _relative_table(self.rel_pos_w, w)  # [w, w, c]
        qg = q.reshape(b, self.heads, h, w, -1)
        bias_h = torch.einsum("bnyxc,ykc->bnyxk", qg, rh)  # query row y vs key row k
        bias_w = torch.einsum("bnyxc,xkc->bnyxk", qg, rw)  # query column x vs key column k
        bias = (bias_h[..., :, None] + bias_w[..., None, :]).reshape(b, self.heads, h * w, h * w)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, d))


def _to_windows(x: torch.Tensor, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """[B, H, W, D] -> [B * n_windows, size, size, D], zero-padding H and W up to multiples of size."""
    b, h, w, d = x.shape
    ph, pw = -h % size, -w % size
    x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.reshape(b, hp // size, size, wp // size, size, d).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, size, size, d), (hp, wp)


def _from_windows(x: torch.Tensor, size: int, padded: tuple[int, int], hw: tuple[int, int]) -> torch.Tensor:
    """Inverse of `_to_windows`, dropping the padding."""
    hp, wp = padded
    b = x.shape[0] // ((hp // size) * (wp // size))
    x = x.reshape(b, hp // size, wp // size, size, size, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, hp, wp, -1)[:, : hw[0], : hw[1]]


class Block(nn.Module):
    """Pre-norm ViT block, windowed (window > 0) or global attention."""

    def __init__(self, c: EncoderConfig, window: int) -> None:
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(c.dim, eps=1e-6)
        self.attn = Attention(c.dim, c.heads, window if window > 0 else c.grid)
        self.norm2 = nn.LayerNorm(c.dim, eps=1e-6)
        self.mlp = MLPBlock(c.dim, int(c.dim * c.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window > 0:
            hw = x.shape[1:3]
            x, padded = _to_windows(x, self.window)
            x = _from_windows(self.attn(x), self.window, padded, hw)
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Stride-p convolution to tokens, [B, 3, H, W] -> [B, H/p, W/p, D]."""

    def __init__(self, c: EncoderConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, c.dim, kernel_size=c.patch, stride=c.patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class ImageEncoderViT(nn.Module):
    """SAM's image encoder: [B, 3, S, S] normalised padded images -> [B, 256, S/16, S/16]."""

    def __init__(self, c: EncoderConfig = EncoderConfig()) -> None:
        super().__init__()
        self.config = c
        self.patch_embed = PatchEmbed(c)
        self.pos_embed = nn.Parameter(torch.zeros(1, c.grid, c.grid, c.dim))
        self.blocks = nn.ModuleList(Block(c, 0 if i in c.global_blocks else c.window) for i in range(c.depth))
        self.neck = nn.Sequential(
            nn.Conv2d(c.dim, c.out_dim, kernel_size=1, bias=False), LayerNorm2d(c.out_dim),
            nn.Conv2d(c.out_dim, c.out_dim, kernel_size=3, padding=1, bias=False), LayerNorm2d(c.out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.neck(x.permute(0, 3, 1, 2))
