"""Region graphs for the offline mask generator: superpixel adjacency, edge weights, graph merging.

`adjacency` lists the edges of a label map's region adjacency graph with the
mean colour step across each shared boundary; `merge_regions` runs
Felzenszwalb-Huttenlocher graph segmentation over such a graph (regions are
nodes, not pixels): edges in increasing weight order, two components join when
the edge is no heavier than either component's internal difference (its
largest merged edge) plus ``k / area``, so small components merge easily and
large ones only across weak edges. All of it is vectorised numpy except the
union-find walk over the sorted edges (one step per edge, a few thousand per
image).
"""

from __future__ import annotations

import numpy as np


def adjacency(labels: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges between 4-connected regions of a label map, with the step across each boundary.

    Args:
        labels: [H, W] int region ids 0..R-1.
        values: [H, W, C] per-pixel values (e.g. Lab colour).

    Returns:
        edges [E, 2] int64 (a < b, unique) and boundary [E] float64: the mean over the
        edge's boundary pixel pairs of the distance between the two pixels' values. Unlike a
        gradient filter's response this is small for a boundary that runs beside a true
        edge instead of on it.
    """
    pairs, steps = [], []
    for a, b, va, vb in ((labels[:, :-1], labels[:, 1:], values[:, :-1], values[:, 1:]),
                         (labels[:-1, :], labels[1:, :], values[:-1, :], values[1:, :])):
        diff = a != b
        lo, hi = np.minimum(a[diff], b[diff]), np.maximum(a[diff], b[diff])
        pairs.append(np.stack([lo, hi], 1))
        steps.append(np.linalg.norm(va[diff] - vb[diff], axis=-1))
    pairs_all = np.concatenate(pairs).astype(np.int64)
    vals = np.concatenate(steps).astype(np.float64)
    if len(pairs_all) == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    edges, inverse = np.unique(pairs_all, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    sums = np.bincount(inverse, weights=vals, minlength=len(edges))
    counts = np.bincount(inverse, minlength=len(edges))
    return edges, sums / np.maximum(counts, 1)


def region_means(labels: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """[n, C] mean of [H, W, C] `values` over each region of `labels` (ids 0..n-1)."""
    flat = labels.reshape(-1)
    counts = np.maximum(np.bincount(flat, minlength=n), 1)
    v = values.reshape(len(flat), -1)
    return np.stack([np.bincount(flat, weights=v[:, c], minlength=n) for c in range(v.shape[1])], 1) / counts[:, None]


def _find(parent: np.ndarray, a: int) -> int:
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


def merge_regions(edges: np.ndarray, weights: np.ndarray, areas: np.ndarray, k: float) -> np.ndarray:
    """Felzenszwalb-Huttenlocher merging of a region graph (module docstring).

    Args:
        edges: [E, 2] node pairs. weights: [E] edge weights (dissimilarity).
        areas: [R] node areas (any unit; `k` is in weight x area units).
        k: scale: larger merges more.

    Returns:
        [R] int64 component id of every node, 0..K-1 in order of first node.
    """
    n = len(areas)
    parent = np.arange(n)
    size = np.asarray(areas, np.float64).copy()
    internal = np.zeros(n)
    for e in np.argsort(weights, kind="stable"):
        a, b = _find(parent, int(edges[e, 0])), _find(parent, int(edges[e, 1]))
        if a == b:
            continue
        w = weights[e]
        if w <= min(internal[a] + k / size[a], internal[b] + k / size[b]):
            parent[b] = a
            size[a] += size[b]
            internal[a] = max(internal[a], internal[b], w)
    roots = np.array([_find(parent, i) for i in range(n)])
    _, comp = np.unique(roots, return_inverse=True)
    return comp.reshape(-1)


def absorb_small(edges: np.ndarray, weights: np.ndarray, comp: np.ndarray, areas: np.ndarray,
                 min_area: float) -> np.ndarray:
    """Merge components smaller than `min_area` into their most similar neighbour (lightest edge).

    Args:
        edges, weights: the node graph. comp: [R] component per node. areas: [R] node areas.
        min_area: in the units of `areas`.

    Returns:
        [R] component ids 0..K'-1 after absorption.
    """
    comp = comp.copy()
    for _ in range(len(areas)):
        sizes = np.bincount(comp, weights=areas)
        ce = comp[edges]
        cross = ce[:, 0] != ce[:, 1]
        if not cross.any():
            break
        small = sizes < min_area
        touch = cross & (small[ce[:, 0]] | small[ce[:, 1]])
        if not touch.any():
            break
        # The lightest edge leaving any small component: merge across it, then recount.
        e = np.flatnonzero(touch)[np.argmin(weights[touch])]
        a, b = ce[e]
        comp[comp == max(a, b)] = min(a, b)
    _, comp = np.unique(comp, return_inverse=True)
    return comp.reshape(-1)
