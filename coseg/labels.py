"""Raw zero-shot label sources: semantic label maps and SAM-style instance masks.

Two kinds of input are supported:

- Semantic label maps (``labels/<stem>.png``): class ids that mean the same
  thing in every view (e.g. MaskDINO output associated by a tracker, as in
  the paper). Loaded as they are.
- Per-view instance masks (``masks/<stem>.png``, uint8/uint16 ids, 0 = no
  mask) whose ids are arbitrary in each view (SAM and other 2D models). They
  are associated across views by 3D overlap through the built Gaussians:
  every mask is turned into the set of Gaussians that dominate its pixels
  (the Gaussian with the largest blending weight per pixel, a map the render
  engine provides), two masks of different views are merged when the IoU of
  their Gaussian sets, counted over the Gaussians visible in both views, is
  at least ``iou_threshold``, and merged groups (union-find over the pairs in
  decreasing IoU, transitive, but never joining two groups that both hold a
  mask of the same view: one view's masks are different instances) become
  globally consistent ids 1..K (0 stays "no mask", ignored in training).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from scipy import sparse

from coseg.errors import InputError

log = logging.getLogger(__name__)

DominantMaps = Callable[[object], np.ndarray] | Mapping[str, np.ndarray]
"""Per view, [H, W] int index of the dominant Gaussian of every pixel (-1 = none):
a callable taking a Camera, or a mapping camera name -> map."""


@dataclass
class LabelSet:
    """Raw labels of a scene's views."""

    maps: dict[str, np.ndarray]
    """Camera name -> [H, W] int32 ids."""
    source: str
    """Which label source produced them."""
    ignore_id: int | None = None
    """Pixels with this id are not supervised (0 for instance masks)."""
    missing: list[str] = field(default_factory=list)
    """Cameras that have no label map (skipped by the pixel loss)."""

    def ids(self) -> np.ndarray:
        """Sorted ids present in the maps, without the ignore id."""
        if not self.maps:
            return np.zeros(0, np.int64)
        ids = np.unique(np.concatenate([np.unique(m) for m in self.maps.values()]))
        return ids[ids != self.ignore_id] if self.ignore_id is not None else ids

    def write(self, folder: str | Path) -> None:
        """Write every map as ``<folder>/<camera name>.png`` (uint8 or uint16, atomic)."""
        from coseg.io.images import write_png

        top = max((int(m.max(initial=0)) for m in self.maps.values()), default=0)
        if top > 65535:
            raise InputError(f"{folder}: {top} label ids do not fit a 16-bit label map")
        dtype = np.uint8 if top < 256 else np.uint16
        for name, m in self.maps.items():
            write_png(Path(folder) / f"{name}.png", m.astype(dtype))


def load_semantic_labels(scene, cameras=None) -> LabelSet:
    """Label maps with ids consistent across views (the scene's ``labels/``).

    Args:
        scene: a `coseg.scene.Scene`.
        cameras: cameras to load (default: the training split).

    Returns:
        `LabelSet`; cameras without a label file are listed in ``missing``.
    """
    cameras = scene.train_cameras if cameras is None else cameras
    maps, missing = {}, []
    for cam in cameras:
        ids = scene.load_labels(cam)
        if ids is None:
            missing.append(cam.name)
        else:
            maps[cam.name] = ids
    if missing:
        log.warning("%d of %d views have no label map; the pixel loss skips them (first: %s)",
                    len(missing), len(cameras), missing[0])
    if not maps:
        raise InputError(f"{scene.root}: no label maps found for any of the {len(cameras)} views")
    return LabelSet(maps=maps, source="semantic", missing=missing)


def _mask_nodes(masks: list[np.ndarray], dominant: list[np.ndarray], min_pixels: int):
    """(view, mask id, Gaussian ids) of every mask with at least `min_pixels` pixels."""
    nodes = []
    for v, (mask, dom) in enumerate(zip(masks, dominant)):
        if mask.shape != dom.shape:
            raise InputError(f"view {v}: mask size {mask.shape} differs from its dominant-Gaussian map {dom.shape}")
        ids, counts = np.unique(mask[mask > 0], return_counts=True)
        for m, c in zip(ids, counts):
            if c < min_pixels:
                continue
            g = np.unique(dom[(mask == m) & (dom >= 0)])
            if g.size:
                nodes.append((v, int(m), g))
    return nodes


def _find(parent: list[int], a: int) -> int:
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


def associate_instances(masks: list[np.ndarray], dominant: list[np.ndarray], iou_threshold: float = 0.3,
                        min_pixels: int = 20, min_covisible: int = 5) -> tuple[list[np.ndarray], int]:
    """Give per-view instance masks globally consistent ids by 3D overlap.

    Args:
        masks: per view, [H, W] int instance ids (0 = none), arbitrary per view.
        dominant: per view, [H, W] int dominant Gaussian index (-1 = none).
        iou_threshold: merge two masks of different views when the IoU of their
            Gaussian sets, restricted to Gaussians visible in both views, reaches it.
        min_pixels: masks smaller than this are dropped (id 0).
        min_covisible: pairs with fewer co-visible Gaussians are never merged.

    Returns:
        (per view [H, W] int32 global ids, 0 = none, ids 1..K numbered in view
        order then by per-view id; K).
    """
    nodes = _mask_nodes(masks, dominant, min_pixels)
    out = [np.zeros(m.shape, np.int32) for m in masks]
    if not nodes:
        return out, 0
    n_gauss = 1 + max(int(g.max()) for _, _, g in nodes)
    n_gauss = max(n_gauss, 1 + max(int(d.max(initial=-1)) for d in dominant))
    rows = np.concatenate([np.full(len(g), i) for i, (_, _, g) in enumerate(nodes)])
    cols = np.concatenate([g for _, _, g in nodes])
    a = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(nodes), n_gauss))
    vis_rows, vis_cols = [], []
    for v, dom in enumerate(dominant):
        g = np.unique(dom[dom >= 0])
        vis_rows.append(np.full(len(g), v))
        vis_cols.append(g)
    vis = sparse.csr_matrix((np.ones(sum(len(g) for g in vis_cols)),
                             (np.concatenate(vis_rows), np.concatenate(vis_cols))),
                            shape=(len(dominant), n_gauss))
    inter = sparse.triu(a @ a.T, k=1).tocoo()
    covis = (a @ vis.T).toarray()
    view = np.array([v for v, _, _ in nodes])
    rows, cols, x = inter.row, inter.col, inter.data
    union = covis[rows, view[cols]] + covis[cols, view[rows]] - x
    ok = (view[rows] != view[cols]) & (union >= min_covisible)
    iou = np.where(ok, x / np.maximum(union, 1), 0.0)
    ok &= iou >= iou_threshold
    # Strongest pairs first (ties in index order), and never two masks of one view in one
    # segment: a mask spanning two objects would otherwise chain them (and, transitively,
    # most of the scene) into one.
    order = np.flatnonzero(ok)[np.lexsort((cols[ok], rows[ok], -iou[ok]))]
    parent = list(range(len(nodes)))
    views = [1 << int(v) for v in view]  # bit set of the views each component holds a mask of
    for i, j in zip(rows[order], cols[order]):
        ri, rj = _find(parent, int(i)), _find(parent, int(j))
        if ri != rj and not views[ri] & views[rj]:
            lo, hi = min(ri, rj), max(ri, rj)
            parent[hi] = lo
            views[lo] |= views[hi]
    roots = [_find(parent, i) for i in range(len(nodes))]
    number = {r: k + 1 for k, r in enumerate(sorted(set(roots)))}
    for (v, m, _), r in zip(nodes, roots):
        out[v][masks[v] == m] = number[r]
    return out, len(number)


def load_instance_masks(scene, dominant: DominantMaps | None, cameras=None, folder: str = "masks",
                        iou_threshold: float = 0.3, min_pixels: int = 20) -> LabelSet:
    """Read ``<scene>/<folder>/<stem>.png`` instance masks and associate them across views.

    Args:
        scene: a `coseg.scene.Scene`.
        dominant: dominant-Gaussian maps per view (from the render engine on
            the built Gaussians); required.
        cameras: cameras to use (default: the training split).
        folder: mask folder name inside the scene.
        iou_threshold, min_pixels: see `associate_instances`.

    Returns:
        `LabelSet` with global ids 1..K and ``ignore_id`` 0.
    """
    if dominant is None:
        raise InputError(f"{scene.root / folder}: instance masks are associated through the built "
                         "Gaussians; run the building stage first")
    cameras = scene.train_cameras if cameras is None else cameras
    names, masks, doms, missing = [], [], [], []
    for cam in cameras:
        path = Path(scene.root) / folder / f"{cam.name}.png"
        if not path.exists():
            missing.append(cam.name)
            continue
        names.append(cam.name)
        masks.append(scene.load_id_map(cam, path, fill=0))  # undistorted and resized like the photo
        dom = dominant[cam.name] if isinstance(dominant, Mapping) else dominant(cam)
        doms.append(np.asarray(dom))
    if not masks:
        raise InputError(f"{scene.root / folder}: no instance masks for any of the {len(cameras)} views")
    if missing:
        log.warning("%d of %d views have no instance mask; the pixel loss skips them (first: %s)",
                    len(missing), len(cameras), missing[0])
    maps, k = associate_instances(masks, doms, iou_threshold, min_pixels)
    log.info("instance masks of %d views associated into %d segments", len(masks), k)
    return LabelSet(maps=dict(zip(names, maps)), source="instance_masks", ignore_id=0, missing=missing)
