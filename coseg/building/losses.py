"""Photometric losses of the building stage: L1 and D-SSIM.

SSIM follows the 3DGS training code: an 11x11 Gaussian window with sigma 1.5,
separable (two 1-D passes) with zero padding of 5 pixels, C1 = 0.01^2,
C2 = 0.03^2, averaged over pixels and channels (or over the pixels of a
mask). `ssim` is the numba forward/backward of `coseg.building.fused_ssim`;
`_ssim` is its plain-PyTorch twin (autograd), used by the tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from coseg.building.fused_ssim import C1, C2, WINDOW, ssim, window

__all__ = ["ssim", "_ssim", "l1", "photometric_loss"]


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of every map of [M, H, W], zero padding WINDOW // 2.

    One grouped convolution per axis over all M maps at once (batching the
    maps is what makes it fast on the CPU).
    """
    m = x.shape[0]
    g = window().to(x.dtype)
    pad = WINDOW // 2
    y = F.conv2d(x[None], g.view(1, 1, 1, WINDOW).expand(m, 1, 1, WINDOW), padding=(0, pad), groups=m)
    return F.conv2d(y, g.view(1, 1, WINDOW, 1).expand(m, 1, WINDOW, 1), padding=(pad, 0), groups=m)[0]


def _ssim(img: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean SSIM of two images in plain PyTorch (the twin of `ssim`).

    Args:
        img: [H, W, C] rendered image.
        ref: [H, W, C] reference image.
        mask: optional [H, W] pixel weights the mean is taken over.

    Returns:
        [] scalar SSIM (1 = identical).
    """
    x = img.permute(2, 0, 1).contiguous()
    y = ref.permute(2, 0, 1).contiguous()
    # one batched blur of the five maps SSIM needs
    c = x.shape[0]
    blurred = _blur(torch.cat([x, y, x * x, y * y, x * y]))
    mu_x, mu_y, e_xx, e_yy, e_xy = blurred.split(c)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x, var_y, cov = e_xx - mu_xx, e_yy - mu_yy, e_xy - mu_xy
    s = ((2 * mu_xy + C1) * (2 * cov + C2)) / ((mu_xx + mu_yy + C1) * (var_x + var_y + C2))
    if mask is None:
        return s.mean()
    return (s * mask.to(s.dtype)).sum() / (mask.to(s.dtype).sum() * c).clamp_min(1.0)


def l1(img: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error of [H, W, C] images (over the pixels of an optional [H, W] mask)."""
    if mask is None:
        return (img - ref).abs().mean()
    m = mask.to(img.dtype)[..., None]
    return ((img - ref).abs() * m).sum() / (m.sum() * img.shape[-1]).clamp_min(1.0)


def photometric_loss(img: torch.Tensor, ref: torch.Tensor, lambda_l1: float,
                     valid: torch.Tensor | None = None, fused: bool = True
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """3DGS loss: lambda_l1 * L1 + (1 - lambda_l1) * (1 - SSIM).

    Args:
        img: [H, W, 3] render; ref: [H, W, 3] ground truth.
        lambda_l1: weight of L1 (0.8 in 3DGS and the paper).
        valid: [H, W, 1] bool, False where the reference sees no photo (undistortion
            borders): there the reference stands in for the render, so those pixels add
            neither loss nor gradient whatever the background the step renders over, and
            both terms are means over the valid pixels (as `coseg eval` measures).
            None: every pixel counts.
        fused: the numba SSIM (`ssim`); False: its torch twin `_ssim`.

    Returns:
        (loss, l1, ssim) scalars; loss carries the gradient.
    """
    mask = None
    if valid is not None:
        img = torch.where(valid, img, ref)
        mask = valid[..., 0].to(img.dtype)
    l1_value = l1(img, ref, mask)
    ssim_value = (ssim if fused else _ssim)(img, ref, mask)
    loss = lambda_l1 * l1_value + (1.0 - lambda_l1) * (1.0 - ssim_value)
    return loss, l1_value, ssim_value
