"""The splatting engine: differentiable Gaussian rasterisation on the CPU (numba) or CUDA.

Public API (contract and math in `docs/rendering.md`):

- `rasterization` — Gaussians + camera(s) -> (images, alphas, meta), differentiable.
- `unproject_features` — paper Algorithm 1: per-view feature maps -> per-Gaussian features.
- `attendance_mask` — attendance-rate pruning mask from unprojection counts.
- `visible_set` — indices of the Gaussians blended into at least one pixel of a view.
- `dominant_gaussians` — per pixel, the Gaussian with the largest blending weight.
- `camera_tensors`, `gaussian_tensors` — model objects -> tensors for the above.
"""

from coseg.render.camera import camera_tensors, gaussian_tensors
from coseg.render.rasterize import rasterization
from coseg.render.unproject import attendance_mask, dominant_gaussians, unproject_features, visible_set

__all__ = ["rasterization", "unproject_features", "attendance_mask", "visible_set", "dominant_gaussians",
           "camera_tensors", "gaussian_tensors"]
