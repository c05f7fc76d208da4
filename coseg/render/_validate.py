"""Input checks for the render entry points: one clear ValueError naming the argument."""

from __future__ import annotations

import torch


def _finite(name: str, x: torch.Tensor) -> None:
    # A sum is finite unless an element is NaN / inf (or the sum overflows): one cheap pass
    # instead of an element-wise mask, with the exact test only when the sum is suspect.
    # This check ran on every render and took ~7% of a training step.
    x = x.detach()
    if not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
        raise ValueError(f"rasterization: {name} contains NaN or inf")


def _shape(name: str, x: object, expected: str, ok: bool) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"rasterization: {name} must be a torch.Tensor, got {type(x).__name__}")
    if not ok:
        raise ValueError(f"rasterization: {name} has shape {tuple(x.shape)}, expected {expected}")


def check_gaussians(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor,
                    opacities: torch.Tensor) -> int:
    """Validate the geometry tensors; returns N."""
    _shape("means", means, "[N, 3]", isinstance(means, torch.Tensor) and means.ndim == 2
           and means.shape[1] == 3)
    n = means.shape[0]
    _shape("quats", quats, f"[{n}, 4]", quats.shape == (n, 4))
    _shape("scales", scales, f"[{n}, 3]", scales.shape == (n, 3))
    _shape("opacities", opacities, f"[{n}]", opacities.shape == (n,))
    for name, x in (("means", means), ("quats", quats), ("scales", scales), ("opacities", opacities)):
        _finite(name, x)
    if n and bool((scales < 0).any()):
        raise ValueError("rasterization: scales must be non-negative (linear standard deviations, "
                         "already exp'd)")
    if n and bool((quats.detach().norm(dim=1) == 0).any()):
        raise ValueError("rasterization: quats contains a zero-norm quaternion")
    if n and bool(((opacities < 0) | (opacities > 1)).any()):
        raise ValueError("rasterization: opacities must lie in [0, 1] (already sigmoid'd)")
    return n


def check_colors(colors: torch.Tensor, n: int, sh_degree: int | None) -> int:
    """Validate colours / SH coefficients; returns the channel count C."""
    if sh_degree is None:
        _shape("colors", colors, f"[{n}, C] with 1 <= C <= 256",
               colors.ndim == 2 and colors.shape[0] == n and 1 <= colors.shape[1] <= 256)
        c = int(colors.shape[1])
    else:
        if sh_degree not in (0, 1, 2, 3):
            raise ValueError(f"rasterization: sh_degree must be 0..3 or None, got {sh_degree}")
        k = (sh_degree + 1) ** 2
        _shape("colors", colors, f"[{n}, K >= {k}, 3] SH coefficients for sh_degree={sh_degree}",
               colors.ndim == 3 and colors.shape[0] == n and colors.shape[1] >= k and colors.shape[2] == 3)
        c = 3
    _finite("colors", colors)
    return c


def check_cameras(viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int) -> int:
    """Validate cameras; returns the batch size B (0 = unbatched single camera)."""
    _shape("viewmats", viewmats, "[4, 4] or [B, 4, 4]",
           viewmats.ndim in (2, 3) and tuple(viewmats.shape[-2:]) == (4, 4))
    batch = viewmats.shape[0] if viewmats.ndim == 3 else 0
    want = "[3, 3]" if batch == 0 else f"[{batch}, 3, 3]"
    _shape("Ks", Ks, want, tuple(Ks.shape) == ((3, 3) if batch == 0 else (batch, 3, 3)))
    _finite("viewmats", viewmats)
    _finite("Ks", Ks)
    k = Ks.reshape(-1, 3, 3)
    if bool((k[:, 0, 0] <= 0).any() or (k[:, 1, 1] <= 0).any()):
        raise ValueError("rasterization: Ks must have positive focal lengths (fx, fy > 0)")
    for name, v in (("width", width), ("height", height)):
        if int(v) != v or int(v) < 1:
            raise ValueError(f"rasterization: {name} must be a positive integer, got {v}")
    return batch


def check_backgrounds(backgrounds: torch.Tensor | None, batch: int, c: int) -> None:
    """Validate the optional background colour(s): [C] or [B, C]."""
    if backgrounds is None:
        return
    ok = tuple(backgrounds.shape) == (c,) or (batch > 0 and tuple(backgrounds.shape) == (batch, c))
    _shape("backgrounds", backgrounds, f"[{c}]" + (f" or [{batch}, {c}]" if batch else ""), ok)
    _finite("backgrounds", backgrounds)
