"""`blend_weights`: a view's rendering as a sparse matrix, for frozen geometry.

With the Gaussians' geometry fixed, rendering per-Gaussian channels is linear
in the channels: pixel p of the image is sum_i w_pi c_i with w_pi =
alpha_i(p) T_i(p), the weight the 3DGS blending gives Gaussian i at p
(Eq. 3). `blend_weights` returns that matrix W [H*W, N] once (CSR), so a
stage that renders many channel sets through the same geometry (the
segmentation stage: new logits every iteration) can render with a sparse
product and back-propagate with its transpose, without projecting, binning
and blending again. `_blend_weights` is its plain-PyTorch float64 twin
(dense, for tests). Background colour is not part of W (it is zero for
logits).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from coseg.render import _validate
from coseg.render._cpu_weights import blend_pairs
from coseg.render.unproject import _geometry, _project


def blend_weights(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
                  viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The blending weights of one view as a CSR matrix [H*W, N] (rows = row-major pixels).

    Args:
        means [N, 3], quats [N, 4], scales [N, 3], opacities [N]: activated Gaussians.
        viewmat: [4, 4] world-to-camera. K: [3, 3].
        width, height: image size.

    Returns:
        indptr [H*W + 1] int64, indices [nnz] int32 (Gaussian of each pair, front to back
        within a pixel) and weights [nnz] float32 (alpha * T, the CPU backend's blending).
    """
    m, q, s, op = _geometry(means, quats, scales, opacities)
    _validate.check_cameras(viewmat, K, width, height)
    if viewmat.ndim != 2:
        raise ValueError("blend_weights: viewmat must be one [4, 4] camera")
    width, height = int(width), int(height)
    projected, (tile_offsets, isect_gauss, _, _) = _project(m, q, s, op, viewmat, K, width, height)
    indptr = np.zeros(width * height + 1, np.int64)
    no_gauss, no_weight = np.empty(0, np.int32), np.empty(0, np.float32)
    with numba.parallel_chunksize(1):
        blend_pairs(tile_offsets, isect_gauss, projected, width, height, False, indptr, no_gauss, no_weight)
        np.cumsum(indptr, out=indptr)
        indices, weights = np.empty(indptr[-1], np.int32), np.empty(indptr[-1], np.float32)
        blend_pairs(tile_offsets, isect_gauss, projected, width, height, True, indptr, indices, weights)
    return indptr, indices, weights


def _blend_weights(means, quats, scales, opacities, viewmat, K, width, height) -> torch.Tensor:
    """Dense float64 twin of `blend_weights`: [H*W, N], rendered one-hot channels of the reference."""
    from coseg.render._reference import _rasterization

    n = means.shape[0]
    img, _, _ = _rasterization(means.double(), quats.double(), scales.double(), opacities.double(),
                               torch.eye(n, dtype=torch.float64), viewmat.double(), K.double(), width, height)
    return img.reshape(-1, n)
