"""Segment Anything's prompt encoder and mask decoder in plain torch.

Module names match the official checkpoints' keys under ``prompt_encoder.``
and ``mask_decoder.``. Only point prompts are used (the automatic mask
generator's grid); box corners and mask inputs have their embeddings in the
state dict (``point_embeddings.2/3``, ``mask_downscaling``) and are loaded so
the checkpoint maps one to one, but no code path feeds them.

- Prompt encoder: random Fourier positional encoding of (x, y) in [0, 1]
  (``pe_layer.positional_encoding_gaussian_matrix`` [2, 128]: sin and cos of
  2 pi (2 p - 1) G), plus a learned embedding per point label (negative 0,
  positive 1, padding -1 -> ``not_a_point_embed`` replaces the encoding). A
  point prompt without a box gets one padding point appended, as SAM does.
  The dense prompt is ``no_mask_embed`` broadcast over the 64 x 64 grid.
- Mask decoder: output tokens (``iou_token``, 4 ``mask_tokens``) followed by
  the prompt tokens go through a two-way transformer (2 blocks of token
  self-attention, token -> image cross-attention, MLP, image -> token
  cross-attention; cross-attentions project to half width) and a final
  token -> image attention; the image embedding is upscaled 4x by two
  transposed convolutions, each mask token's 3-layer MLP (hypernetwork) gives
  the weights of its mask as a dot product with the upscaled embedding; the
  IoU token's MLP predicts the quality of the 4 masks. Mask 0 is the
  single-mask output, masks 1-3 the multimask outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from coseg.labelgen.sam_encoder import LayerNorm2d, MLPBlock


@dataclass(frozen=True)
class DecoderConfig:
    """Architecture of SAM's prompt encoder and mask decoder."""

    dim: int = 256
    """Prompt / transformer width (256 in every official model)."""
    grid: int = 64
    """Side of the image embedding grid."""
    image_size: int = 1024
    """Side of the padded model input in pixels."""
    depth: int = 2
    """Two-way transformer blocks."""
    heads: int = 8
    """Attention heads of the two-way transformer."""
    mlp_dim: int = 2048
    """Hidden width of the transformer's MLPs."""
    mask_in_chans: int = 16
    """Hidden channels of the (unused) mask-prompt downscaling."""
    iou_hidden: int = 256
    """Hidden width of the IoU prediction head."""
    n_masks: int = 4
    """Mask tokens (1 single-mask output + 3 multimask outputs)."""


class PositionEmbeddingRandom(nn.Module):
    """Fourier features of normalised (x, y) with a fixed random Gaussian matrix."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, n_feats))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """[..., 2] (x, y) in [0, 1] -> [..., 2 * n_feats]."""
        proj = 2 * math.pi * ((2 * coords - 1) @ self.positional_encoding_gaussian_matrix)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)

    def dense(self, side: int) -> torch.Tensor:
        """[2 * n_feats, side, side] encoding of the grid cell centres."""
        centres = (torch.arange(side, dtype=torch.float32) + 0.5) / side
        yy, xx = torch.meshgrid(centres, centres, indexing="ij")
        return self.encode(torch.stack([xx, yy], dim=-1)).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    """Point prompts -> sparse embeddings; no mask prompt -> the dense ``no_mask_embed``."""

    def __init__(self, c: DecoderConfig) -> None:
        super().__init__()
        self.config = c
        self.pe_layer = PositionEmbeddingRandom(c.dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, c.dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, c.dim)
        m = c.mask_in_chans
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, m // 4, kernel_size=2, stride=2), LayerNorm2d(m // 4), nn.GELU(),
            nn.Conv2d(m // 4, m, kernel_size=2, stride=2), LayerNorm2d(m), nn.GELU(),
            nn.Conv2d(m, c.dim, kernel_size=1))
        self.no_mask_embed = nn.Embedding(1, c.dim)

    def embed_points(self, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Points [B, P, 2] in model-input pixels, labels [B, P] (1 positive, 0 negative) -> [B, P + 1, dim]."""
        b = points.shape[0]
        points = torch.cat([points + 0.5, torch.zeros(b, 1, 2)], dim=1)  # + the padding point
        labels = torch.cat([labels, -torch.ones(b, 1, dtype=labels.dtype)], dim=1)
        emb = self.pe_layer.encode(points / self.config.image_size)
        emb = torch.where((labels == -1)[..., None], self.not_a_point_embed.weight, emb)
        emb = emb + (labels == 0)[..., None] * self.point_embeddings[0].weight
        return emb + (labels == 1)[..., None] * self.point_embeddings[1].weight

    def dense_embedding(self, b: int) -> torch.Tensor:
        """[B, dim, grid, grid] dense prompt for "no mask"."""
        g = self.config.grid
        return self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(b, -1, g, g)

    def dense_pe(self) -> torch.Tensor:
        """[1, dim, grid, grid] positional encoding of the image embedding."""
        return self.pe_layer.dense(self.config.grid)[None]


class Attention(nn.Module):
    """Attention with q/k/v projected to ``dim // downsample`` (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``)."""

    def __init__(self, dim: int, heads: int, downsample: int = 1) -> None:
        super().__init__()
        inner = dim // downsample
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        def split(x):
            b, n, d = x.shape
            return x.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q_proj(q)), split(self.k_proj(k)), split(self.v_proj(v)))
        b, h, n, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * d))


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token -> image, MLP, image -> token (each followed by a LayerNorm)."""

    def __init__(self, c: DecoderConfig, skip_first_pe: bool) -> None:
        super().__init__()
        self.self_attn = Attention(c.dim, c.heads)
        self.norm1 = nn.LayerNorm(c.dim)
        self.cross_attn_token_to_image = Attention(c.dim, c.heads, downsample=2)
        self.norm2 = nn.LayerNorm(c.dim)
        self.mlp = MLPBlock(c.dim, c.mlp_dim, act=nn.ReLU)
        self.norm3 = nn.LayerNorm(c.dim)
        self.norm4 = nn.LayerNorm(c.dim)
        self.cross_attn_image_to_token = Attention(c.dim, c.heads, downsample=2)
        self.skip_first_pe = skip_first_pe

    def forward(self, queries, keys, query_pe, key_pe):
        if self.skip_first_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, queries + query_pe, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """SAM's two-way transformer over (prompt tokens, image tokens)."""

    def __init__(self, c: DecoderConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TwoWayAttentionBlock(c, skip_first_pe=(i == 0)) for i in range(c.depth))
        self.final_attn_token_to_image = Attention(c.dim, c.heads, downsample=2)
        self.norm_final_attn = nn.LayerNorm(c.dim)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor):
        """image, image_pe [B, C, h, w]; tokens [B, T, C] -> (tokens [B, T, C], image tokens [B, h*w, C])."""
        keys = image.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        queries = queries + self.final_attn_token_to_image(queries + tokens, keys + key_pe, keys)
        return self.norm_final_attn(queries), keys


class MLP(nn.Module):
    """``layers.0..n-1`` linear layers with ReLU between them."""

    def __init__(self, d_in: int, hidden: int, d_out: int, n: int) -> None:
        super().__init__()
        widths = [d_in] + [hidden] * (n - 1) + [d_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class MaskDecoder(nn.Module):
    """Image embedding + prompt tokens -> 4 mask logit maps [4 * grid] square and 4 IoU predictions."""

    def __init__(self, c: DecoderConfig) -> None:
        super().__init__()
        self.transformer = TwoWayTransformer(c)
        self.iou_token = nn.Embedding(1, c.dim)
        self.mask_tokens = nn.Embedding(c.n_masks, c.dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(c.dim, c.dim // 4, kernel_size=2, stride=2), LayerNorm2d(c.dim // 4), nn.GELU(),
            nn.ConvTranspose2d(c.dim // 4, c.dim // 8, kernel_size=2, stride=2), nn.GELU())
        self.output_hypernetworks_mlps = nn.ModuleList(MLP(c.dim, c.dim, c.dim // 8, 3) for _ in range(c.n_masks))
        self.iou_prediction_head = MLP(c.dim, c.iou_hidden, c.n_masks, 3)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor,
                dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict every mask of a batch of prompts on one image.

        Args:
            image: [1, C, h, w] image embedding. image_pe: [1, C, h, w].
            sparse: [B, T, C] prompt tokens. dense: [B, C, h, w] dense prompt.

        Returns:
            masks [B, n_masks, 4 h, 4 w] logits and iou [B, n_masks].
        """
        b = sparse.shape[0]
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens[None].expand(b, -1, -1), sparse], dim=1)
        src = image.expand(b, -1, -1, -1) + dense
        pos = image_pe.expand(b, -1, -1, -1)
        _, c, h, w = src.shape
        hs, keys = self.transformer(src, pos, tokens)
        n = self.mask_tokens.weight.shape[0]
        up = self.output_upscaling(keys.transpose(1, 2).reshape(b, c, h, w))
        hyper = torch.stack([mlp(hs[:, 1 + i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1)
        masks = (hyper @ up.flatten(2)).reshape(b, n, up.shape[2], up.shape[3])
        return masks, self.iou_prediction_head(hs[:, 0])
