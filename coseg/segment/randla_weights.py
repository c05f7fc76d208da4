"""Loading RandLA-Net encoder weights: Open3D-ML, RandLA-Net-pytorch and our own.

Accepted files (torch ``.pt``/``.pth``):

- Open3D-ML torch ``RandLANet`` checkpoints (``{"model_state_dict": ...}`` as
  saved by its pipeline, or a bare state dict). Keys: ``fc0``, ``bn0``,
  ``encoder.{i}.{mlp1,mlp2,shortcut}.{conv,batch_norm}``,
  ``encoder.{i}.{lse1,lse2}.mlp.{conv,batch_norm}``,
  ``encoder.{i}.{pool1,pool2}.score_fn.0``, ``encoder.{i}.{pool1,pool2}.mlp.*``,
  ``mlp.*`` (the bottleneck); ``decoder.*`` and ``fc1.*`` are not used.
- RandLA-Net-pytorch (aRI0U) checkpoints: the same block names with
  ``fc_start``, ``bn_start.0`` and a ``fc_end`` head.
- Our own files ``{"format": "coseg-randla", "config": {...}, "state_dict": {...}}``
  written by `save_encoder` (``resources/weights/randla_synth.pt``).

Only the encoder is loaded; 1x1 convolution weights [out, in, 1, 1] become
Linear weights [out, in]. Missing or unexpected encoder keys are an error
that lists them.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from coseg.errors import InputError
from coseg.io.atomic import atomic_open
from coseg.segment.randla import RandLAConfig, RandLAEncoder

log = logging.getLogger(__name__)

OWN_FORMAT = "coseg-randla"

_BLOCK = r"encoder\.(\d+)\."
_RULES = [
    (rf"^{_BLOCK}(mlp1|mlp2|shortcut)\.conv\.(weight|bias)$", r"blocks.\1.\2.fc.\3"),
    (rf"^{_BLOCK}(mlp1|mlp2|shortcut)\.batch_norm\.(\w+)$", r"blocks.\1.\2.bn.\3"),
    (rf"^{_BLOCK}(lse1|lse2)\.mlp\.conv\.(weight|bias)$", r"blocks.\1.\2.fc.\3"),
    (rf"^{_BLOCK}(lse1|lse2)\.mlp\.batch_norm\.(\w+)$", r"blocks.\1.\2.bn.\3"),
    (rf"^{_BLOCK}(pool1|pool2)\.score_fn\.0\.(weight|bias)$", r"blocks.\1.\2.score.\3"),
    (rf"^{_BLOCK}(pool1|pool2)\.mlp\.conv\.(weight|bias)$", r"blocks.\1.\2.mlp.fc.\3"),
    (rf"^{_BLOCK}(pool1|pool2)\.mlp\.batch_norm\.(\w+)$", r"blocks.\1.\2.mlp.bn.\3"),
    (r"^mlp\.conv\.(weight|bias)$", r"bottleneck.fc.\1"),
    (r"^mlp\.batch_norm\.(\w+)$", r"bottleneck.bn.\1"),
    (r"^(?:fc0|fc_start)\.(weight|bias)$", r"fc0.\1"),
    (r"^(?:bn0|bn_start\.0)\.(\w+)$", r"bn0.\1"),
]
_NOT_ENCODER = re.compile(r"^(decoder|fc1|fc_end|fc\.|Decoder_layer|decoder_0)")


def map_external_keys(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename Open3D-ML / RandLA-Net-pytorch encoder keys to ours.

    Args:
        state: the checkpoint's state dict.

    Returns:
        (mapped encoder state dict, keys that are neither encoder nor a known head).
    """
    mapped, unknown = {}, []
    for key, value in state.items():
        key = key.removeprefix("module.")
        for pattern, repl in _RULES:
            if re.match(pattern, key):
                new = re.sub(pattern, repl, key)
                if value.ndim == 4 and new.endswith("fc.weight"):
                    value = value.reshape(value.shape[0], value.shape[1])
                mapped[new] = value
                break
        else:
            if not _NOT_ENCODER.match(key):
                unknown.append(key)
    return mapped, unknown


def infer_config(state: dict[str, torch.Tensor], layout: str) -> RandLAConfig:
    """Encoder shape from a mapped state dict (in_channels, widths, layout)."""
    try:
        fc0 = state["fc0.weight"]
        n_blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        d_out = tuple(int(state[f"blocks.{i}.mlp2.fc.weight"].shape[1]) for i in range(n_blocks))
    except (KeyError, ValueError) as e:
        raise InputError(f"not a RandLA-Net encoder state dict (missing {e})") from e
    return RandLAConfig(in_channels=int(fc0.shape[1]), d_feature=int(fc0.shape[0]), d_out=d_out,
                        ratios=(4,) * n_blocks, layout=layout)


def _read(path: Path) -> dict:
    if not path.exists():
        raise InputError(f"{path}: RandLA-Net weights not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise InputError(f"{path}: unreadable RandLA-Net checkpoint ({type(e).__name__}: {e})") from e


def load_encoder(path: str | Path) -> RandLAEncoder:
    """Build a frozen encoder from any supported checkpoint file.

    Args:
        path: checkpoint path.

    Returns:
        The `RandLAEncoder`, frozen (eval mode, no gradients).
    """
    path = Path(path)
    ckpt = _read(path)
    if not isinstance(ckpt, dict):
        raise InputError(f"{path}: expected a state dict, got {type(ckpt).__name__}")
    if ckpt.get("format") == OWN_FORMAT:
        config = RandLAConfig(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in ckpt["config"].items()})
        state, unknown = ckpt["state_dict"], []
    else:
        raw = ckpt.get("model_state_dict", ckpt.get("state_dict", ckpt))
        layout = "ari0u" if any(k.removeprefix("module.").startswith("fc_start.") for k in raw) else "open3d"
        state, unknown = map_external_keys(raw)
        config = infer_config(state, layout)
    encoder = RandLAEncoder(config)
    own = encoder.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own)) + unknown
    if missing or unexpected:
        raise InputError(f"{path}: RandLA-Net keys do not match the encoder "
                         f"(missing: {', '.join(missing) or 'none'}; "
                         f"unexpected: {', '.join(unexpected) or 'none'})")
    bad = [k for k in own if own[k].shape != state[k].shape]
    if bad:
        raise InputError(f"{path}: RandLA-Net tensor shapes differ for "
                         + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in bad))
    encoder.load_state_dict(state)
    log.info("RandLA-Net encoder loaded from %s (layout %s, in_channels %d)", path,
             config.layout, config.in_channels)
    return encoder.freeze()


def save_encoder(encoder: RandLAEncoder, path: str | Path, **provenance) -> None:
    """Write the encoder in our own format (atomic), with provenance fields."""
    payload = {"format": OWN_FORMAT, "config": encoder.config.to_dict(),
               "state_dict": encoder.state_dict(), **provenance}
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)
