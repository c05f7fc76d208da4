"""The ``.splat`` format of the antimatter15 WebGL viewer (and many web viewers).

Each Gaussian is 32 bytes, little-endian, no header:

- position: float32 x, y, z (12 bytes)
- scale: float32 x3, linear (``exp`` of the log-scales) (12 bytes)
- colour: uint8 R, G, B, A; RGB = round(clip(0.5 + C0 * f_dc, 0, 1) * 255),
  A = round(sigmoid(opacity) * 255) (4 bytes)
- rotation: uint8 w, x, y, z of the normalised quaternion q, stored as
  round(clip(q * 128 + 128, 0, 255)) (4 bytes)

Gaussians are written sorted by descending ``exp(sum of log-scales) *
opacity`` (volume proxy times opacity), the order the antimatter15 converter
uses so that a viewer streaming the file shows the big, opaque splats first.
The reference converter truncates the uint8 values; we round, which differs
by at most one unit.

The format has no view-dependent colour and no segment ids: higher SH bands,
segments and extras are dropped, and `read_splat` returns degree-0 Gaussians.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from coseg.errors import InputError
from coseg.gaussians import Gaussians, logit, rgb_to_sh_dc, sh_dc_to_rgb, sigmoid
from coseg.io.atomic import atomic_open

log = logging.getLogger(__name__)

SPLAT_DTYPE = np.dtype([
    ("position", "<f4", (3,)),
    ("scale", "<f4", (3,)),
    ("rgba", "u1", (4,)),
    ("rot", "u1", (4,)),
])
"""One .splat record (32 bytes)."""


def splat_order(gaussians: Gaussians) -> np.ndarray:
    """[N] indices sorting Gaussians by descending exp(sum log-scales) * opacity (stable)."""
    key = np.exp(gaussians.log_scales.astype(np.float64).sum(axis=1)) * sigmoid(gaussians.opacity_logits)
    return np.argsort(-key, kind="stable")


def to_splat_records(gaussians: Gaussians) -> np.ndarray:
    """Gaussians -> [N] structured array of SPLAT_DTYPE, in `splat_order`."""
    g = gaussians.subset(splat_order(gaussians))
    rec = np.empty(len(g), SPLAT_DTYPE)
    rec["position"] = g.means
    rec["scale"] = np.exp(g.log_scales.astype(np.float64))
    rgb = np.clip(sh_dc_to_rgb(g.sh_dc).astype(np.float64), 0.0, 1.0)
    alpha = sigmoid(g.opacity_logits).astype(np.float64)[:, None]
    rec["rgba"] = np.round(np.concatenate([rgb, alpha], axis=1) * 255.0).astype(np.uint8)
    q = g.quats.astype(np.float64)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.divide(q, norm, out=np.tile([1.0, 0.0, 0.0, 0.0], (len(q), 1)), where=norm > 0)
    rec["rot"] = np.clip(np.round(q * 128.0 + 128.0), 0, 255).astype(np.uint8)
    return rec


def write_splat(gaussians: Gaussians, path: str | os.PathLike) -> None:
    """Write Gaussians as a .splat file (layout and order in the module docstring), atomically;
    NaN / inf values are refused.

    Args:
        gaussians: the model; SH bands above 0, segments and extras are not stored.
        path: destination.
    """
    gaussians.check_writable(path)
    rec = to_splat_records(gaussians)
    with atomic_open(path, "wb") as f:
        f.write(rec.tobytes())
    log.debug("wrote %d Gaussians to %s", len(rec), path)


def read_splat(path: str | os.PathLike, keep_nonfinite: bool = False) -> Gaussians:
    """Read a .splat file into degree-0 Gaussians.

    Quantised values come back as the nearest parameters: quaternion
    (byte - 128) / 128, opacity logit(A / 255) (clamped away from 0 and 1),
    DC from RGB / 255, log-scale from the float scales (zero scales map to
    the log of the smallest positive float32). Gaussians with NaN or inf
    positions or scales are dropped with one warning (unless `keep_nonfinite`).

    Raises:
        InputError: the file cannot be read or its size is not a multiple of 32.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(data) % SPLAT_DTYPE.itemsize:
        raise InputError(f"{path}: {len(data)} bytes is not a whole number of 32-byte .splat records "
                         "(truncated or not a .splat file)")
    rec = np.frombuffer(data, SPLAT_DTYPE)
    n = len(rec)
    tiny = np.finfo(np.float32).tiny
    g = Gaussians(
        means=rec["position"].astype(np.float32),
        quats=((rec["rot"].astype(np.float32) - 128.0) / 128.0).astype(np.float32),
        log_scales=np.log(np.maximum(rec["scale"].astype(np.float32), tiny)),
        opacity_logits=logit(rec["rgba"][:, 3] / 255.0),
        sh_dc=rgb_to_sh_dc(rec["rgba"][:, :3] / 255.0),
        sh_rest=np.zeros((n, 0, 3), np.float32),
    )
    return g if keep_nonfinite else g.without_nonfinite(str(path))
