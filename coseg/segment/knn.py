"""K-nearest-neighbour utilities on point sets (scipy cKDTree, outside autograd).

Used for RandLA-Net's neighbourhoods and sampling, the decoder's
inverse-distance upsampling and the 3D regulariser.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def knn_indices(query: np.ndarray, points: np.ndarray, k: int,
                exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k nearest `points` of every query point.

    Args:
        query: [Q, 3] query positions.
        points: [P, 3] reference positions.
        k: neighbours per query; when k > P the nearest ones repeat (RandLA-Net
            pads small clouds the same way).
        exclude: [Q] index into `points` to leave out for each query (the
            query's own index when query points are a subset of `points`).

    Returns:
        [Q, k] int64, nearest first.
    """
    points = np.asarray(points, np.float64)
    query = np.asarray(query, np.float64)
    n = points.shape[0]
    if n == 0:
        raise ValueError("knn_indices: empty reference point set")
    extra = 1 if exclude is not None else 0
    kk = min(k + extra, n)
    _, idx = cKDTree(points).query(query, k=kk)
    idx = np.asarray(idx, np.int64).reshape(query.shape[0], kk)
    if exclude is not None:
        keep = idx != np.asarray(exclude, np.int64)[:, None]
        # Rows where the excluded index was not found drop their farthest hit.
        no_hit = keep.all(1)
        keep[no_hit, -1] = False
        idx = idx[keep].reshape(query.shape[0], kk - 1)
    if idx.shape[1] < k:
        if idx.shape[1] == 0:
            raise ValueError("knn_indices: no neighbour left after exclusion")
        pad = np.repeat(idx[:, -1:], k - idx.shape[1], axis=1)
        idx = np.concatenate([idx, pad], axis=1)
    return idx


def inverse_distance_weights(query: np.ndarray, points: np.ndarray, k: int,
                             eps: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """k nearest `points` of every query and their normalised 1/distance weights.

    Args:
        query: [Q, 3] positions to interpolate at.
        points: [P, 3] positions that carry features.
        k: neighbours (clamped to P).

    Returns:
        idx [Q, k] int64 and weights [Q, k] float32 summing to 1 per row.
    """
    points = np.asarray(points, np.float64)
    k = min(k, points.shape[0])
    dist, idx = cKDTree(points).query(np.asarray(query, np.float64), k=k)
    dist = np.asarray(dist).reshape(len(query), k)
    idx = np.asarray(idx, np.int64).reshape(len(query), k)
    w = 1.0 / (dist + eps)
    w /= w.sum(1, keepdims=True)
    return idx, w.astype(np.float32)
