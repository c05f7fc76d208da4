"""Photometric losses of the building stage: L1 and D-SSIM in torch.

SSIM follows the 3DGS training code: an 11x11 Gaussian window with sigma 1.5
applied as two separable 1-D convolutions with zero padding of 5 pixels,
C1 = 0.01^2, C2 = 0.03^2, averaged over pixels and channels.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

WINDOW = 11
SIGMA = 1.5
C1 = 0.01 ** 2
C2 = 0.03 ** 2


@functools.lru_cache(maxsize=4)
def _gauss_1d(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return (g / g.sum()).float()


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of [B, C, H, W] per channel, zero padding."""
    c = x.shape[1]
    g = _gauss_1d(WINDOW, SIGMA).to(x.dtype)
    pad = WINDOW // 2
    x = F.conv2d(x, g.view(1, 1, 1, WINDOW).expand(c, 1, 1, WINDOW), padding=(0, pad), groups=c)
    return F.conv2d(x, g.view(1, 1, WINDOW, 1).expand(c, 1, WINDOW, 1), padding=(pad, 0), groups=c)


def ssim(img: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of two images.

    Args:
        img: [H, W, C] rendered image.
        ref: [H, W, C] reference image.

    Returns:
        [] scalar SSIM (1 = identical).
    """
    x = img.permute(2, 0, 1)[None]
    y = ref.permute(2, 0, 1)[None]
    mu_x, mu_y = _blur(x), _blur(y)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = _blur(x * x) - mu_xx
    var_y = _blur(y * y) - mu_yy
    cov = _blur(x * y) - mu_xy
    s = ((2 * mu_xy + C1) * (2 * cov + C2)) / ((mu_xx + mu_yy + C1) * (var_x + var_y + C2))
    return s.mean()


def l1(img: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of [H, W, C] images."""
    return (img - ref).abs().mean()


def photometric_loss(img: torch.Tensor, ref: torch.Tensor, lambda_l1: float
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """3DGS loss: lambda_l1 * L1 + (1 - lambda_l1) * (1 - SSIM).

    Args:
        img: [H, W, 3] render; ref: [H, W, 3] ground truth.
        lambda_l1: weight of L1 (0.8 in 3DGS and the paper).

    Returns:
        (loss, l1, ssim) scalars; loss carries the gradient.
    """
    l1_value = l1(img, ref)
    ssim_value = ssim(img, ref)
    loss = lambda_l1 * l1_value + (1.0 - lambda_l1) * (1.0 - ssim_value)
    return loss, l1_value, ssim_value
