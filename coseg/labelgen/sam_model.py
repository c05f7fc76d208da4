"""The SAM model (image encoder + prompt encoder + mask decoder), its inputs and its weights.

`SamModel` holds the three parts under the official checkpoints' top-level
names (``image_encoder``, ``prompt_encoder``, ``mask_decoder``), so an official
``sam_vit_{b,l,h}_*.pth`` state dict loads one to one. The architecture is read
from the checkpoint's shapes (`config_from_state`): width from the patch
embedding, depth from the block count, head width and window size from the
relative-position tables (windowed blocks have 2 * 14 - 1 rows, global blocks
2 * 64 - 1), global blocks from which tables are the grid's. A checkpoint that
is not SAM's, or not the model asked for, is one clear error.

Weights never download: a path, or the official file name in the local cache
folder (`sam_cache_dir`: ``$COSEG_SAM_DIR``, else the torch hub checkpoint
folder).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coseg.errors import InputError
from coseg.labelgen.sam_decoder import DecoderConfig, MaskDecoder, PromptEncoder
from coseg.labelgen.sam_encoder import EncoderConfig, ImageEncoderViT

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)

MODELS = {
    "vit_b": (EncoderConfig(768, 12, 12, (2, 5, 8, 11)), "sam_vit_b_01ec64.pth"),
    "vit_l": (EncoderConfig(1024, 24, 16, (5, 11, 17, 23)), "sam_vit_l_0b3195.pth"),
    "vit_h": (EncoderConfig(1280, 32, 16, (7, 15, 23, 31)), "sam_vit_h_4b8939.pth"),
}
"""Official model name -> (image encoder architecture, official checkpoint file name)."""


@dataclass(frozen=True)
class SamConfig:
    """Architecture of a whole SAM model."""

    encoder: EncoderConfig = EncoderConfig()
    """The image encoder."""
    decoder: DecoderConfig = DecoderConfig()
    """The prompt encoder and mask decoder."""


class SamModel(nn.Module):
    """SAM with point prompts: image -> embedding once, then masks for batches of points."""

    def __init__(self, config: SamConfig = SamConfig()) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = ImageEncoderViT(config.encoder)
        self.prompt_encoder = PromptEncoder(config.decoder)
        self.mask_decoder = MaskDecoder(config.decoder)

    @property
    def image_size(self) -> int:
        return self.config.encoder.image_size

    def input_size(self, hw: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of an image of size `hw` resized so its longer side is the model's input side."""
        scale = self.image_size / max(hw)
        return int(hw[0] * scale + 0.5), int(hw[1] * scale + 0.5)

    @torch.no_grad()
    def embed_image(self, image: np.ndarray) -> torch.Tensor:
        """[H, W, 3] float in [0, 1] -> [1, C, g, g] image embedding.

        The image is resized (bilinear, antialiased) so its longer side is the
        input side, normalised with SAM's pixel statistics (0-255 scale) and
        zero-padded at the bottom / right to a square.
        """
        x = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None] * 255.0
        h, w = self.input_size(image.shape[:2])
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        x = (x - torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)) / torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
        x = F.pad(x, (0, self.image_size - w, 0, self.image_size - h))
        return self.image_encoder(x)

    @torch.no_grad()
    def predict_points(self, embedding: torch.Tensor, points: torch.Tensor, hw: tuple[int, int]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks for single positive points, each prompt on its own.

        Args:
            embedding: [1, C, g, g] from `embed_image`.
            points: [B, 2] (x, y) in original image pixels.
            hw: original image (H, W).

        Returns:
            mask logits [B, n_masks, H, W] and predicted IoUs [B, n_masks].
        """
        h, w = self.input_size(hw)
        scaled = points.float() * torch.tensor([w / hw[1], h / hw[0]])
        sparse = self.prompt_encoder.embed_points(scaled[:, None], torch.ones(len(points), 1, dtype=torch.int64))
        dense = self.prompt_encoder.dense_embedding(len(points))
        low, iou = self.mask_decoder(embedding, self.prompt_encoder.dense_pe(), sparse, dense)
        up = F.interpolate(low, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        up = F.interpolate(up[..., :h, :w], size=hw, mode="bilinear", align_corners=False)
        return up, iou


def _describe(e: EncoderConfig) -> str:
    return f"width {e.dim}, {e.depth} blocks, {e.heads} heads, global blocks {list(e.global_blocks)}"


def config_from_state(state: dict[str, torch.Tensor]) -> SamConfig:
    """The SAM architecture a state dict was saved from (see module docstring).

    Raises:
        KeyError: a key every SAM checkpoint has is missing.
    """
    patch_w = state["image_encoder.patch_embed.proj.weight"]
    dim, patch = patch_w.shape[0], patch_w.shape[-1]
    grid = state["image_encoder.pos_embed"].shape[1]
    depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("image_encoder.blocks."))
    rows = [state[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0] for i in range(depth)]
    head_dim = state["image_encoder.blocks.0.attn.rel_pos_h"].shape[1]
    global_blocks = tuple(i for i, r in enumerate(rows) if r == 2 * grid - 1)
    windowed = [r for r in rows if r != 2 * grid - 1]
    window = (windowed[0] + 1) // 2 if windowed else 14
    out_dim = state["image_encoder.neck.0.weight"].shape[0]
    mlp = state["image_encoder.blocks.0.mlp.lin1.weight"].shape[0]
    encoder = EncoderConfig(dim=dim, depth=depth, heads=dim // head_dim, global_blocks=global_blocks,
                            window=window, image_size=grid * patch, patch=patch, out_dim=out_dim,
                            mlp_ratio=mlp / dim)
    tdim = state["mask_decoder.iou_token.weight"].shape[1]
    t_depth = 1 + max(int(k.split(".")[3]) for k in state if k.startswith("mask_decoder.transformer.layers."))
    # The decoder's head count leaves no trace in the shapes; every SAM model uses 8.
    decoder = DecoderConfig(
        dim=tdim, grid=grid, image_size=grid * patch, depth=t_depth,
        mlp_dim=state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0],
        mask_in_chans=state["prompt_encoder.mask_downscaling.3.weight"].shape[0],
        iou_hidden=state["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0],
        n_masks=state["mask_decoder.mask_tokens.weight"].shape[0])
    return SamConfig(encoder, decoder)


def sam_cache_dir() -> Path:
    """Local folder searched for official SAM checkpoints ($COSEG_SAM_DIR or the torch hub cache)."""
    env = os.environ.get("COSEG_SAM_DIR")
    return Path(env).expanduser() if env else Path(torch.hub.get_dir()) / "checkpoints"


def find_checkpoint(model: str, weights: str | Path | None) -> Path:
    """The checkpoint file to load: `weights` (a file, or a folder holding the official file) or the cache.

    Raises:
        InputError: unknown model name, or no such file (nothing is downloaded).
    """
    if model not in (*MODELS, "auto"):
        raise InputError(f"unknown SAM model {model!r} (known: auto, {', '.join(MODELS)})")
    names = [MODELS[model][1]] if model != "auto" else [f for _, f in MODELS.values()]
    folder = sam_cache_dir()
    if weights is not None:
        p = Path(weights).expanduser()
        if p.is_file():
            return p
        if not p.is_dir():
            raise InputError(f"{p}: SAM weights not found (pass an official sam_vit_*.pth file or its folder)")
        folder = p
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"no SAM checkpoint in {folder} (looked for {', '.join(names)}; put the official file "
                     "there, pass --sam-weights FILE, or use the offline default generator)")


def load_sam(path: str | Path, model: str = "auto") -> SamModel:
    """Build SAM from an official checkpoint.

    Args:
        path: the checkpoint (a state dict, possibly under a ``model`` / ``state_dict`` entry).
        model: "vit_b" | "vit_l" | "vit_h" to insist on that architecture, or "auto".

    Raises:
        InputError: unreadable file, not a SAM checkpoint, another architecture than
            `model`, or keys / shapes that do not match the architecture.
    """
    path = Path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise InputError(f"{path}: unreadable SAM checkpoint ({type(e).__name__}: {e})") from e
    for entry in ("model", "state_dict"):
        if isinstance(raw, dict) and isinstance(raw.get(entry), dict):
            raw = raw[entry]
    if not isinstance(raw, dict):
        raise InputError(f"{path}: not a SAM checkpoint (no state dict inside)")
    if any(str(k).startswith("image_encoder.layers.") for k in raw):
        raise InputError(f"{path}: a MobileSAM (TinyViT image encoder) checkpoint; only the ViT-B/L/H "
                         "image encoders are implemented")
    try:
        config = config_from_state(raw)
    except (KeyError, ValueError, IndexError) as e:
        raise InputError(f"{path}: not a Segment Anything checkpoint (no {e} entry)") from e
    if model != "auto":
        expected = MODELS[model][0]
        got = config.encoder
        if (got.dim, got.depth, got.heads, got.global_blocks) != (expected.dim, expected.depth, expected.heads,
                                                                 expected.global_blocks):
            raise InputError(f"{path}: checkpoint has a SAM image encoder of {_describe(got)}, not {model} "
                             f"({_describe(expected)})")
    sam = SamModel(config)
    try:
        missing, unexpected = sam.load_state_dict(raw, strict=False)
    except RuntimeError as e:  # shape mismatches
        first = str(e).strip().splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise InputError(f"{path}: SAM tensor shapes do not match the architecture ({first})") from e
    if missing or unexpected:
        raise InputError(f"{path}: SAM keys do not match the architecture (missing: {', '.join(missing[:3]) or 'none'}; "
                         f"unexpected: {', '.join(unexpected[:3]) or 'none'})")
    return sam.eval()
