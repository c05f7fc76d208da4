"""Feature unprojection (paper Algorithm 1), attendance-rate mask, per-view visible sets and
dominant-Gaussian maps.

`unproject_features` streams one feature map per view through the numba sweep of
`coseg.render._cpu_unproject`; memory is the [N, C] buffer plus one view's
projection, never proportional to V * H * W.
"""

from __future__ import annotations

from collections.abc import Iterable

import numba
import numpy as np
import torch

from coseg.render import _validate
from coseg.render._autograd import as_numpy
from coseg.render._cpu_binning import bin_gaussians, reduce_entries
from coseg.render._cpu_pixels import SETUP, gaussian_setup
from coseg.render._cpu_project import project_fwd
from coseg.render._cpu_raster import raster_fwd
from coseg.render._cpu_unproject import scatter_band, unproject_band

NEAR_PLANE = 0.2
#: Bytes of per-entry feature rows held at once (one band of tiles).
BAND_BYTES = 64 * 2**20


def _project(means: np.ndarray, quats: np.ndarray, scales: np.ndarray, opacities: np.ndarray,
             viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int):
    """Project float32 Gaussians for one camera: (projected, binning) as the kernels take them."""
    n = means.shape[0]
    vm = viewmat.detach().cpu().numpy().astype(np.float64)
    k = K.detach().cpu().numpy().astype(np.float64)
    intr = np.array([k[0, 0], k[1, 1], k[0, 2], k[1, 2]], np.float64)
    means2d, conics = np.empty((n, 2), np.float32), np.empty((n, 3), np.float32)
    depths, radii = np.empty(n, np.float32), np.empty(n, np.int32)
    project_fwd(means, quats, scales, vm, intr, width, height, NEAR_PLANE, means2d, conics, depths, radii)
    setup = np.empty((n, SETUP))
    gaussian_setup(conics, opacities, radii, setup)
    return (means2d, conics, opacities, setup), bin_gaussians(means2d, radii, depths, width, height)


def _geometry(means, quats, scales, opacities):
    _validate.check_gaussians(means, quats, scales, opacities)
    return tuple(as_numpy(x, np.float32) for x in (means, quats, scales, opacities))


def unproject_features(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor,
                       opacities: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor,
                       width: int, height: int, feature_maps: Iterable[np.ndarray], *,
                       eps: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Lift 2D feature maps onto the Gaussians (paper Algorithm 1).

    For every Gaussian, sum over views and pixels of alpha_i(p) T_i(p) F(p) and the number
    of pixels where it is blended (alpha >= 1/255 before termination, the 3DGS rules), then
    divide: features = buffer / (count + eps).

    Args:
        means [N, 3], quats [N, 4], scales [N, 3], opacities [N]: activated Gaussians.
        viewmats: [V, 4, 4] (or [4, 4]) world-to-camera. Ks: [V, 3, 3] (or [3, 3]).
        width, height: image size of every view.
        feature_maps: iterable yielding V float32 [h, w, C] arrays, one per view in order.
            When (h, w) != (height, width) the map is sampled bilinearly at each pixel centre
            (align_corners=False convention, see `coseg.render._cpu_unproject`).
        eps: added to the counts before dividing.

    Returns:
        features [N, C] float32 and counts [N] int64 (blended pixels over all views).

    Raises:
        ValueError: bad geometry/cameras, a feature map of the wrong rank/width or with
            NaN/inf, or a number of feature maps different from the number of views.
    """
    m, q, s, op = _geometry(means, quats, scales, opacities)
    _validate.check_cameras(viewmats, Ks, width, height)
    vms, ks = viewmats.reshape(-1, 4, 4), Ks.reshape(-1, 3, 3)
    n_views = vms.shape[0]
    buffer = counts = None
    n_seen = 0
    for fmap in feature_maps:
        if n_seen >= n_views:
            raise ValueError(f"unproject_features: feature_maps yields more than the {n_views} views")
        fmap = np.ascontiguousarray(fmap, dtype=np.float32)
        if fmap.ndim != 3 or not 1 <= fmap.shape[2] <= 256 or fmap.shape[0] < 1 or fmap.shape[1] < 1:
            raise ValueError(f"unproject_features: feature map {n_seen} has shape {fmap.shape}, "
                             "expected [h, w, C] with 1 <= C <= 256")
        if buffer is None:
            buffer = np.zeros((m.shape[0], fmap.shape[2]), np.float32)
            counts = np.zeros(m.shape[0], np.int64)
        elif fmap.shape[2] != buffer.shape[1]:
            raise ValueError(f"unproject_features: feature map {n_seen} has {fmap.shape[2]} channels, "
                             f"the first had {buffer.shape[1]}")
        if not np.isfinite(fmap).all():
            raise ValueError(f"unproject_features: feature map {n_seen} contains NaN or inf")
        projected, binning = _project(m, q, s, op, vms[n_seen], ks[n_seen], int(width), int(height))
        _unproject_view(binning, projected, fmap, int(width), int(height), buffer, counts)
        n_seen += 1
    if n_seen != n_views:
        raise ValueError(f"unproject_features: got {n_seen} feature maps for {n_views} views")
    # In place, in float32: the buffer becomes the features (no [N, C] float64 temporary).
    features = np.divide(buffer, (counts + eps).astype(np.float32)[:, None], out=buffer)
    return features, counts


def _unproject_view(binning, projected, fmap, width, height, buffer, counts) -> None:
    """Accumulate one view into buffer/counts, band by band of tiles (bounded memory)."""
    tile_offsets, isect_gauss, gauss_offsets, gauss_entries = binning
    n_ch = fmap.shape[2]
    band_rows = max(1, BAND_BYTES // (4 * n_ch))
    n_tiles = tile_offsets.shape[0] - 1
    largest = int(np.diff(tile_offsets).max()) if n_tiles else 0
    rows = max(min(band_rows, isect_gauss.shape[0]), largest, 1)
    entry_feat = np.empty((rows, n_ch), np.float32)
    entry_count = np.empty(entry_feat.shape[0], np.int64)
    tile0 = 0
    while tile0 < n_tiles:
        # Extend the band while its entries fit the preallocated rows (always >= one tile).
        limit = tile_offsets[tile0] + entry_feat.shape[0]
        tile1 = max(tile0 + 1, int(np.searchsorted(tile_offsets, limit, side="right")) - 1)
        tile1 = min(tile1, n_tiles)
        with numba.parallel_chunksize(1):
            unproject_band(tile_offsets, isect_gauss, projected, fmap, width, height,
                           tile0, tile1, entry_feat, entry_count)
        base = int(tile_offsets[tile0])
        scatter_band(gauss_offsets, gauss_entries, base, int(tile_offsets[tile1]) - base,
                     entry_feat, entry_count, buffer, counts)
        tile0 = tile1


def attendance_mask(counts: np.ndarray, tau: float, n_views: int, width: int, height: int) -> np.ndarray:
    """bool [N]: Gaussians whose blended-pixel count reaches tau * V * H * W (the attendance rate)."""
    return np.asarray(counts) >= tau * n_views * width * height


def visible_set(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
                viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int) -> np.ndarray:
    """int64 [M] indices of the Gaussians that pass culling and are blended into >= 1 pixel."""
    m, q, s, op = _geometry(means, quats, scales, opacities)
    _validate.check_cameras(viewmat, K, width, height)
    if viewmat.ndim != 2:
        raise ValueError("visible_set: viewmat must be one [4, 4] camera")
    width, height = int(width), int(height)
    projected, (tile_offsets, isect_gauss, gauss_offsets, gauss_entries) = _project(
        m, q, s, op, viewmat, K, width, height)
    entry_count = np.empty(isect_gauss.shape[0], np.int32)
    no_channels = np.empty((m.shape[0], 0), np.float32)
    with numba.parallel_chunksize(1):
        raster_fwd(tile_offsets, isect_gauss, projected, no_channels, np.empty(0, np.float32),
                   width, height, np.empty((height, width, 0), np.float32),
                   np.empty((height, width)), np.empty((height, width), np.int32), entry_count, None)
    contrib = np.empty((m.shape[0], 1), np.int32)
    reduce_entries(gauss_offsets, gauss_entries, entry_count[:, None], contrib)
    return np.flatnonzero(contrib[:, 0] > 0).astype(np.int64)


@torch.no_grad()
def dominant_gaussians(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor,
                       opacities: torch.Tensor, viewmat: torch.Tensor, K: torch.Tensor, width: int,
                       height: int, backend: str = "auto") -> np.ndarray:
    """[H, W] int64: per pixel the Gaussian with the largest blending weight alpha * T (-1 = none).

    The forward pass's own record (``rasterization(..., render_dominant=True)``) on a
    3-channel dummy colour (every backend renders 3 channels).
    """
    from coseg.render.rasterize import rasterization

    if viewmat.ndim != 2:
        raise ValueError("dominant_gaussians: viewmat must be one [4, 4] camera")
    colors = torch.zeros(means.shape[0], 3, dtype=means.dtype, device=means.device)
    _, _, meta = rasterization(means, quats, scales, opacities, colors, viewmat, K, width, height,
                               render_dominant=True, backend=backend)
    return meta["dominant"].cpu().numpy()
