"""DINO / DINOv2 Vision Transformer in plain torch, weight loading and the `dino` extractor.

The ViT: patch embedding (a stride-p convolution), a CLS token (and, for
DINOv2 "reg" models, register tokens), learned position embeddings
interpolated bicubically to other image sizes, pre-norm blocks
(LayerNorm -> multi-head self-attention -> residual, LayerNorm -> MLP with
GELU -> residual; DINOv2 scales both residual branches by LayerScale), a
final LayerNorm. No timm / torchvision.

Multi-scale features (paper Sec. 4.1): the outputs of 4 blocks (by default
blocks 3, 6, 9, 12, 1-based), each passed through the final LayerNorm as
DINO's ``get_intermediate_layers`` does; every patch token is concatenated
with that block's CLS token, giving 4 maps [H/p, W/p, 2 D].

Weights never download: they come from a given path or the torch hub cache
(``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/checkpoints``)
under the official file names. Official DINO / DINOv2 key names and timm
names are accepted.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coseg.errors import InputError
from coseg.features import file_digest, state_digest

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ViTConfig:
    """Architecture of a ViT backbone."""

    dim: int = 384
    depth: int = 12
    heads: int = 6
    patch: int = 8
    mlp_ratio: float = 4.0
    layerscale: bool = False
    """DINOv2's per-channel LayerScale on both residual branches."""
    registers: int = 0
    """DINOv2 register tokens (0 for the register-free models)."""
    pretrain_size: int = 224
    """Image size the position embeddings were trained at."""
    interp_offset: float = 0.1
    """Added to the target grid size when interpolating the position embeddings (official DINO and
    DINOv2: 0.1, with the scale factor (n + 0.1) / side; the DINOv2 register models: 0, by size)."""
    interp_antialias: bool = False
    """Antialiased bicubic interpolation of the position embeddings (the DINOv2 register models)."""
    eps: float = 1e-6


MODELS = {
    "vits8": (ViTConfig(), "dino_deitsmall8_pretrain.pth"),
    "vitb8": (ViTConfig(dim=768, heads=12), "dino_vitbase8_pretrain.pth"),
    "dinov2_vits14": (ViTConfig(patch=14, layerscale=True, pretrain_size=518), "dinov2_vits14_pretrain.pth"),
    "dinov2_vits14_reg": (ViTConfig(patch=14, layerscale=True, registers=4, pretrain_size=518, interp_offset=0.0,
                                    interp_antialias=True), "dinov2_vits14_reg4_pretrain.pth"),
}
"""Model name -> (architecture, official checkpoint file name), as the official torch hub entries build them."""


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, c: ViTConfig) -> None:
        super().__init__()
        self.heads = c.heads
        self.norm1 = nn.LayerNorm(c.dim, eps=c.eps)
        self.qkv = nn.Linear(c.dim, 3 * c.dim)
        self.proj = nn.Linear(c.dim, c.dim)
        self.norm2 = nn.LayerNorm(c.dim, eps=c.eps)
        hidden = int(c.dim * c.mlp_ratio)
        self.fc1 = nn.Linear(c.dim, hidden)
        self.fc2 = nn.Linear(hidden, c.dim)
        self.ls1 = nn.Parameter(torch.ones(c.dim)) if c.layerscale else None
        self.ls2 = nn.Parameter(torch.ones(c.dim)) if c.layerscale else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, T, D] -> [B, T, D]."""
        b, t, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        a = self.proj(a.transpose(1, 2).reshape(b, t, d))
        x = x + (a * self.ls1 if self.ls1 is not None else a)
        m = self.fc2(F.gelu(self.fc1(self.norm2(x))))
        return x + (m * self.ls2 if self.ls2 is not None else m)


class VisionTransformer(nn.Module):
    """DINO-style ViT returning per-block patch and CLS tokens."""

    def __init__(self, config: ViTConfig = ViTConfig()) -> None:
        super().__init__()
        c = self.config = config
        self.patch_embed = nn.Conv2d(3, c.dim, kernel_size=c.patch, stride=c.patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, c.registers, c.dim)) if c.registers else None
        grid = c.pretrain_size // c.patch
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, c.dim))
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim, eps=c.eps)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        pe = self.pos_embed
        n = pe.shape[1] - 1
        side = int(math.isqrt(n))
        if side * side != n:
            raise ValueError(f"position embedding of {n} patches is not a square grid")
        if (h, w) == (side, side):
            return pe
        grid = pe[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        c = self.config
        # As the official code: with an offset the interpolation runs by scale factor (n + offset) / side,
        # which samples slightly differently from a plain resize to (h, w).
        size = dict(scale_factor=((h + c.interp_offset) / side, (w + c.interp_offset) / side)) \
            if c.interp_offset else dict(size=(h, w))
        grid = F.interpolate(grid, mode="bicubic", align_corners=False, antialias=c.interp_antialias, **size)
        return torch.cat([pe[:, :1], grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)], dim=1)

    def forward(self, images: torch.Tensor, blocks: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Run the ViT and collect the normalised outputs of some blocks.

        Args:
            images: [B, 3, H, W] normalised images, H and W multiples of the patch.
            blocks: 1-based block numbers to return.

        Returns:
            One (patch tokens [B, H/p, W/p, D], CLS token [B, D]) per requested block.
        """
        b, _, hh, ww = images.shape
        p = self.config.patch
        h, w = hh // p, ww // p
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1) + self._pos_embed(h, w)
        n_reg = 0
        if self.register_tokens is not None:
            n_reg = self.register_tokens.shape[1]
            x = torch.cat([x[:, :1], self.register_tokens.expand(b, -1, -1), x[:, 1:]], dim=1)
        out = {}
        for i, blk in enumerate(self.blocks, start=1):
            x = blk(x)
            if i in blocks:
                y = self.norm(x)
                out[i] = (y[:, 1 + n_reg:].reshape(b, h, w, -1), y[:, 0])
            if i >= max(blocks):
                break
        return [out[i] for i in blocks]


_KEY_RULES = [
    (r"^blocks\.\d+\.(\d+)\.", r"blocks.\1."),  # DINOv2 FSDP "block chunks": blocks.<chunk>.<index>.
    (r"^blocks\.(\d+)\.attn\.qkv\.", r"blocks.\1.qkv."),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"blocks.\1.proj."),
    (r"^blocks\.(\d+)\.mlp\.(fc1|fc2)\.", r"blocks.\1.\2."),
    (r"^blocks\.(\d+)\.(ls1|ls2)\.(gamma|scale)$", r"blocks.\1.\2"),
    (r"^patch_embed\.proj\.", "patch_embed."),
    (r"^reg_token$", "register_tokens"),
]
_IGNORED = re.compile(r"^(head|fc_norm|mask_token|head_drop)")


def map_vit_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename official DINO / DINOv2 / timm ViT keys to ours; drop heads and mask tokens."""
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "backbone.", "teacher.", "student."):
            key = key.removeprefix(prefix)
        if _IGNORED.match(key):
            continue
        for pattern, repl in _KEY_RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def config_from_state(state: dict[str, torch.Tensor], heads: int | None = None) -> ViTConfig:
    """Infer the shape-given architecture from a mapped state dict (heads from dim/64 unless given)."""
    dim = state["cls_token"].shape[-1]
    patch = state["patch_embed.weight"].shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    grid = int(math.isqrt(state["pos_embed"].shape[1] - 1))
    regs = state["register_tokens"].shape[1] if "register_tokens" in state else 0
    hidden = state["blocks.0.fc1.weight"].shape[0]
    return ViTConfig(dim=dim, depth=depth, heads=heads or max(1, dim // 64), patch=patch,
                     mlp_ratio=hidden / dim, layerscale="blocks.0.ls1" in state, registers=regs,
                     pretrain_size=grid * patch)


_SHAPE_FIELDS = ("dim", "depth", "patch", "mlp_ratio", "layerscale", "registers", "pretrain_size")
"""The ViTConfig fields a checkpoint's tensor shapes determine (heads and interpolation they do not)."""


def check_architecture(found: ViTConfig, model: str, path: Path) -> ViTConfig:
    """The architecture of `model` when the checkpoint's shapes fit it; else a one-line InputError.

    The head count is not visible in the tensors (qkv is [3 D, D] for any count), so a
    checkpoint of another model would load with the wrong heads: the named model
    must match the checkpoint's shapes.
    """
    expected = MODELS[model][0]
    if all(getattr(found, f) == getattr(expected, f) for f in _SHAPE_FIELDS):
        return expected
    fits = [name for name, (c, _) in MODELS.items() if all(getattr(found, f) == getattr(c, f) for f in _SHAPE_FIELDS)]
    hint = f"; it fits --dino-model {' or '.join(fits)}" if fits else "; it fits none of " + ", ".join(MODELS)
    diff = ", ".join(f"{f} {getattr(found, f)} (expected {getattr(expected, f)})"
                     for f in _SHAPE_FIELDS if getattr(found, f) != getattr(expected, f))
    raise InputError(f"{path}: this ViT checkpoint is not the {model} architecture: {diff}{hint}")


def load_vit(path: str | Path, model: str | None = "vits8", heads: int | None = None) -> VisionTransformer:
    """Build a ViT from a checkpoint file (official DINO/DINOv2 or timm names).

    Args:
        path: checkpoint path (a state dict, or a DINO training checkpoint with
            a ``teacher`` / ``model`` / ``state_dict`` entry).
        model: the `MODELS` name the checkpoint must match (its heads and
            position-embedding interpolation are used); None infers the
            architecture from the shapes alone (tests, other sizes).
        heads: attention heads when `model` is None (default: dim / 64, true for ViT-S and ViT-B).

    Returns:
        The model in eval mode.

    Raises:
        InputError: missing or unreadable file, not a ViT, or not the `model` architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: DINO weights not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise InputError(f"{path}: unreadable DINO checkpoint ({type(e).__name__}: {e})") from e
    for entry in ("teacher", "model", "state_dict"):
        if isinstance(raw, dict) and isinstance(raw.get(entry), dict):
            raw = raw[entry]
    if not isinstance(raw, dict):
        raise InputError(f"{path}: not a ViT checkpoint (a {type(raw).__name__}, not a state dict)")
    state = map_vit_keys(raw)
    try:
        config = config_from_state(state, heads)
    except (KeyError, ValueError) as e:
        raise InputError(f"{path}: not a ViT checkpoint (missing {e})") from e
    if model is not None:
        config = check_architecture(config, model, path)
    vit = VisionTransformer(config)
    try:
        missing, unexpected = vit.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a tensor whose shape does not fit the others
        first = str(e).strip().splitlines()[-1].strip()
        raise InputError(f"{path}: ViT tensor shapes do not fit together ({first})") from e
    if missing or unexpected:
        raise InputError(f"{path}: ViT keys do not match (missing: {', '.join(missing) or 'none'}; "
                         f"unexpected: {', '.join(unexpected) or 'none'})")
    return vit.eval()


def hub_checkpoint_dir() -> Path:
    """Where torch hub caches checkpoints ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def prepare_image(image: np.ndarray, patch: int) -> torch.Tensor:
    """[H, W, 3] float in [0, 1] -> [1, 3, H', W'] ImageNet-normalised, H', W' multiples of `patch`.

    The image is resized (bilinear) to the nearest multiple of the patch size
    (halves round up).
    """
    img = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
    h, w = img.shape[-2:]
    th, tw = (max(patch, int(s / patch + 0.5) * patch) for s in (h, w))
    if (th, tw) != (h, w):
        img = F.interpolate(img, size=(th, tw), mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (img - mean) / std


class DinoExtractor:
    """The `dino` feature extractor: 4 block outputs ⊕ CLS, [H/p, W/p, 2 D] each.

    Args:
        model: a `MODELS` name: "vits8" (default, ViT-S/8), "vitb8" (ViT-B/8), "dinov2_vits14"
            (DINOv2 ViT-S/14) or "dinov2_vits14_reg" (with 4 register tokens); a checkpoint
            of another architecture is refused.
        weights: checkpoint path; default the official file in the torch hub cache.
        blocks: 4 block numbers (1-based); default evenly spaced, (3, 6, 9, 12) for depth 12.
        vit: an already built model (tests); overrides `model` and `weights`.
    """

    name = "dino"

    def __init__(self, model: str = "vits8", weights: str | Path | None = None,
                 blocks: tuple[int, ...] | None = None, vit: VisionTransformer | None = None) -> None:
        if model not in MODELS:
            raise InputError(f"unknown DINO model {model!r} (known: {', '.join(MODELS)})")
        self.model_name = model
        self.weights = Path(weights) if weights is not None else hub_checkpoint_dir() / MODELS[model][1]
        self._vit = vit
        self._blocks = tuple(blocks) if blocks is not None else None

    @property
    def description(self) -> str:
        return (f"DINO {self.model_name} ({self.weights.name}), blocks {self.blocks} "
                "⊕ CLS token, PCA to 64-d, L2-normalised")

    @property
    def blocks(self) -> tuple[int, ...]:
        depth = self._vit.config.depth if self._vit is not None else MODELS[self.model_name][0].depth
        chosen = self._blocks or tuple(round(depth * k / 4) for k in range(1, 5))
        if len(chosen) != 4 or not all(1 <= b <= depth for b in chosen):
            raise InputError(f"DINO blocks must be 4 numbers in 1..{depth}, got {chosen}")
        return chosen

    def available(self) -> bool:
        """True when a model was given or its weights file exists (never downloads)."""
        return self._vit is not None or self.weights.is_file()

    def fingerprint(self) -> str:
        """Model, weights digest and blocks: what the features depend on (feature cache key)."""
        digest = state_digest(self._vit) if self._vit is not None else file_digest(self.weights)
        return f"dino {self.model_name} weights {digest} blocks {','.join(map(str, self.blocks))}"

    def unavailable_reason(self) -> str:
        return (f"no DINO weights: looked for {self.weights} (put the official "
                f"{MODELS[self.model_name][1]} there or pass a path)")

    def vit(self) -> VisionTransformer:
        """The backbone, loaded on first use."""
        if self._vit is None:
            if not self.available():
                raise InputError(self.unavailable_reason())
            self._vit = load_vit(self.weights, model=self.model_name)
            log.info("DINO %s loaded from %s", self.model_name, self.weights)
        return self._vit

    @torch.no_grad()
    def extract(self, image: np.ndarray) -> list[np.ndarray]:
        """Multi-scale DINO features of one image.

        Args:
            image: [H, W, 3] float32 in [0, 1].

        Returns:
            4 arrays [H/p, W/p, 2 D] float32 (patch token ⊕ CLS token per block).
        """
        vit = self.vit()
        x = prepare_image(image, vit.config.patch)
        outs = vit(x, self.blocks)
        maps = []
        for tokens, cls in outs:
            grid = tokens[0]
            maps.append(torch.cat([grid, cls[0].expand(*grid.shape[:2], -1)], dim=-1).numpy())
        return maps
