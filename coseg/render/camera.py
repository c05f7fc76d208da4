"""Conversions from the project's model classes to the tensors `rasterization` takes."""

from __future__ import annotations

import torch

from coseg.gaussians import Gaussians
from coseg.scene import Camera


def camera_tensors(cam: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """(viewmat [4, 4], K [3, 3]) float32 tensors of a camera (OpenCV world-to-camera, pixels)."""
    viewmat = torch.tensor(cam.world_to_camera, dtype=torch.float32)
    K = torch.tensor(cam.K, dtype=torch.float32)
    return viewmat, K


def gaussian_tensors(g: Gaussians, requires_grad: bool = False) -> dict[str, torch.Tensor]:
    """Activated parameters of a Gaussian model, ready for `rasterization`.

    Returns:
        dict with means [N, 3], quats [N, 4] (unnormalised), scales [N, 3] (exp of log-scales),
        opacities [N] (sigmoid of logits) and sh [N, K, 3] (DC first), float32, each a leaf
        tensor with ``requires_grad`` as asked.
    """
    arrays = {"means": g.means, "quats": g.quats, "scales": g.scales,
              "opacities": g.opacities, "sh": g.sh_coeffs}
    return {k: torch.tensor(v, dtype=torch.float32).requires_grad_(requires_grad) for k, v in arrays.items()}
