"""Segment topology for hand fixes: the 3D-connected parts of a segment, neighbour spacing.

Two Gaussians of a segment are neighbours when their centres are closer than
a radius; the connected parts of that graph are what "split a segment"
makes. The default radius is `SPLIT_SPACINGS` x the median distance from a
centre to its nearest neighbour (the sampling spacing of the surface), so a
gap a few splats wide separates parts while the ordinary spacing does not.
Parts smaller than `min_points` are noise, not objects: each joins the
part of its nearest kept neighbour.
"""

from __future__ import annotations

import numpy as np

SPLIT_SPACINGS = 3.0
"""Default split radius in units of the median nearest-neighbour spacing."""
SPACING_SAMPLE = 20_000
"""Centres sampled to estimate the spacing (the median is stable long before all N)."""


def segment_histogram(segments: np.ndarray, mask: np.ndarray | None = None) -> dict[int, int]:
    """Gaussians per segment id among the masked rows ([N] ids, [N] bool) -> {id: count}, ids sorted.

    A bincount (ids are small integers; negative ids are shifted): at 200k
    rows it is about 20x faster than ``np.unique`` and runs after every edit
    and selection change.
    """
    seg = segments if mask is None else segments[mask]
    if not len(seg):
        return {}
    lo = int(seg.min())
    counts = np.bincount(seg.astype(np.int64) - lo)
    ids = np.flatnonzero(counts)
    return {int(i + lo): int(counts[i]) for i in ids}


def median_spacing(points: np.ndarray, seed: int = 0) -> float:
    """Median distance from a centre to its nearest other centre ([N, 3] -> float; 0 for N < 2)."""
    from scipy.spatial import cKDTree

    if len(points) < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    sample = points if len(points) <= SPACING_SAMPLE else points[rng.choice(len(points), SPACING_SAMPLE,
                                                                             replace=False)]
    dist, _ = cKDTree(points).query(sample, k=2)
    return float(np.median(dist[:, 1]))


def connected_parts(points: np.ndarray, radius: float, min_points: int = 1) -> np.ndarray:
    """Label the 3D-connected parts of a point set.

    Args:
        points: [N, 3] centres.
        radius: neighbour distance (> 0).
        min_points: parts with fewer points join the part of their nearest kept neighbour.

    Returns:
        [N] int64 labels 0..P-1, 0 the largest part, then by decreasing size
        (ties: the part holding the lower first row first).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(points)
    if n == 0:
        return np.zeros(0, np.int64)
    pairs = cKDTree(points).query_pairs(float(radius), output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, raw = connected_components(graph, directed=False)
    sizes = np.bincount(raw)
    first = np.full(len(sizes), n, np.int64)
    np.minimum.at(first, raw, np.arange(n))
    order = np.lexsort((first, -sizes))           # by size desc, then first row
    rank = np.empty(len(sizes), np.int64)
    rank[order] = np.arange(len(sizes))
    labels = rank[raw]
    small = np.bincount(labels)[labels] < max(1, min_points)
    if small.all():
        return np.zeros(n, np.int64)
    if small.any():
        # Noise joins the part of its nearest kept neighbour.
        kept = np.flatnonzero(~small)
        _, nearest = cKDTree(points[kept]).query(points[small], k=1)
        labels[small] = labels[kept[nearest]]
    # Renumber so the kept parts are 0..P-1 without gaps (order kept).
    _, labels = np.unique(labels, return_inverse=True)
    return labels.astype(np.int64)
