"""The splatting engine: differentiable Gaussian rasterisation on the CPU (numba) or CUDA.

Public API (contract in `docs/rendering.md`):

- `rasterization` — Gaussians + camera(s) -> (images, alphas, meta).
- `camera_tensors`, `gaussian_tensors` — model objects -> tensors for `rasterization`.
"""

from coseg.render.camera import camera_tensors, gaussian_tensors
from coseg.render.rasterize import rasterization

__all__ = ["rasterization", "camera_tensors", "gaussian_tensors"]
