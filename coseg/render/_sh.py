"""Spherical-harmonics colour evaluation (degrees 0-3, the 3DGS constants and basis order).

Plain vectorised PyTorch: the cost is a few elementwise ops over N Gaussians,
small next to rasterisation, and autograd gives the gradients with respect to
the coefficients and (through the view direction) the means.
"""

from __future__ import annotations

import torch

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
         0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
         -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def sh_basis(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """Real SH basis values [N, (degree+1)^2] for unit directions dirs [N, 3]."""
    x, y, z = dirs.unbind(-1)
    cols = [torch.full_like(x, SH_C0)]
    if degree > 0:
        cols += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree > 1:
        xx, yy, zz = x * x, y * y, z * z
        cols += [SH_C2[0] * x * y, SH_C2[1] * y * z, SH_C2[2] * (2.0 * zz - xx - yy),
                 SH_C2[3] * x * z, SH_C2[4] * (xx - yy)]
    if degree > 2:
        cols += [SH_C3[0] * y * (3.0 * xx - yy), SH_C3[1] * x * y * z,
                 SH_C3[2] * y * (4.0 * zz - xx - yy), SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
                 SH_C3[4] * x * (4.0 * zz - xx - yy), SH_C3[5] * z * (xx - yy),
                 SH_C3[6] * x * (xx - 3.0 * yy)]
    return torch.stack(cols, dim=-1)


def eval_sh_colors(degree: int, coeffs: torch.Tensor, means: torch.Tensor,
                   camera_center: torch.Tensor) -> torch.Tensor:
    """View-dependent RGB of every Gaussian, 3DGS style.

    Args:
        degree: SH degree 0..3 (only the first (degree+1)^2 coefficients are used).
        coeffs: [N, K, 3] SH coefficients, DC first.
        means: [N, 3] world positions. camera_center: [3] world position of the camera.

    Returns:
        [N, 3] colours = max(SH(dir) . coeffs + 0.5, 0), dir = normalise(mean - centre).
    """
    n_basis = (degree + 1) ** 2
    if degree == 0:
        basis = torch.full((means.shape[0], 1), SH_C0, dtype=coeffs.dtype, device=coeffs.device)
    else:
        dirs = means - camera_center
        dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        basis = sh_basis(degree, dirs.to(coeffs.dtype))
    colors = torch.einsum("nk,nkc->nc", basis, coeffs[:, :n_basis])
    return torch.clamp_min(colors + 0.5, 0.0)
