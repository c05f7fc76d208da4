"""The offline default label generator `regions`: a reduced stand-in for SAM.

SAM needs a 375 MB-2.5 GB checkpoint that nothing here downloads. This
generator needs no weights of its own and gives per-view instance masks from
two cues only:

- colour: CIE Lab of the photo;
- a pretrained feature map: the 4-scale maps of a feature-extractor plugin
  (``features="auto"``: the best extractor present, see
  `coseg.features.select_extractor`); the chosen scales are reduced per image
  by PCA (`feature_dim` components) and L2-normalised.

Steps, at a working resolution whose longer side is at most `work_size`:

1. SLIC superpixels in Lab (`superpixels` of them, scikit-image);
2. a region adjacency graph of the superpixels, each edge weighted by the
   colour distance of the two superpixels' mean Lab, the cosine distance of
   their mean features and the mean colour step across their boundary,
   each term divided by its median over the image's edges (so the weights are
   comparable across photos) and mixed by `color_weight`, `feature_weight`,
   `boundary_weight`;
3. Felzenszwalb-Huttenlocher graph merging of that graph
   (`coseg.labelgen.graph.merge_regions`) in two passes: colour and boundary
   terms only (scale `colour_merge_k`, in units of image area), so that
   superpixels along an edge, whose mean features are blurred across it, join
   their own side; then all three terms on the graph of those colour regions
   (scale `merge_k`); regions below `min_area` (a fraction of the image) are
   absorbed by their most similar neighbour;
4. the region map is resized back to the photo (nearest) and numbered 1..K.

What it is not: SAM has learned what an object is; this groups pixels that
look alike and are not separated by an edge. Objects with parts of different
colours (a lamp's shade and pole) come out as several regions, and two
touching objects of one colour and texture as one. Measured in
docs/benchmarks.md ("Zero-shot labels").
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from coseg.errors import InputError

log = logging.getLogger(__name__)

#: Smallest unit of the edge-weight terms: a Lab distance of 0.05 (L/100, a/50, b/50 units, about 2.5
#: Delta E) or a feature cosine distance of 0.05 -- about what tells two surfaces apart.
NOISE_FLOOR = 0.05


@dataclass
class RegionSettings:
    """Knobs of the `regions` generator."""

    features: str = "auto"
    """Feature extractor plugin whose maps join the colour ("auto": the best one present)."""
    scales: tuple[int, ...] = (2, 3)
    """Which of the extractor's 4 scales (1-based) are used."""
    feature_dim: int = 12
    """Per-image PCA components of the features."""
    work_size: int = 640
    """Longer side (pixels) the image is segmented at."""
    superpixels: int = 1200
    """SLIC superpixels per image."""
    compactness: float = 20.0
    """SLIC compactness (colour vs. position)."""
    color_weight: float = 1.0
    """Weight of the Lab distance in the edge weights."""
    feature_weight: float = 1.0
    """Weight of the feature cosine distance in the edge weights."""
    boundary_weight: float = 1.0
    """Weight of the colour step across the boundary in the edge weights."""
    colour_merge_k: float = 0.01
    """Scale of the first, colour-only merging pass (image-area units)."""
    merge_k: float = 0.04
    """Scale of the colour + feature merging pass in units of image area: larger gives fewer, bigger regions."""
    min_area: float = 0.0005
    """Regions below this fraction of the image are absorbed by a neighbour."""

    def __post_init__(self) -> None:
        self.scales = tuple(int(s) for s in self.scales)
        if not self.scales or not all(1 <= s <= 4 for s in self.scales):
            raise InputError(f"regions: scales must be numbers in 1..4, got {self.scales}")
        if self.superpixels < 2 or self.work_size < 16 or self.feature_dim < 1:
            raise InputError("regions: superpixels >= 2, work_size >= 16 and feature_dim >= 1 are required")
        if self.merge_k <= 0 or self.colour_merge_k <= 0 or not 0 <= self.min_area < 1:
            raise InputError("regions: merge_k and colour_merge_k must be > 0 and min_area in [0, 1)")


def _pca_features(maps: list[np.ndarray], scales: tuple[int, ...], hw: tuple[int, int], dim: int) -> np.ndarray:
    """[h, w, dim] L2-normalised PCA of the chosen scales, bilinearly resized to `hw`.

    The PCA runs on the grid of the finest chosen scale (the coarser ones resized to it) and
    only its `dim` components are resized to the image: cheap for wide feature maps.
    """
    import torch
    import torch.nn.functional as F

    chosen = [torch.from_numpy(np.ascontiguousarray(maps[s - 1], np.float32)).permute(2, 0, 1)[None] for s in scales]
    grid = max((m.shape[2:] for m in chosen), key=lambda g: g[0] * g[1])
    parts = [m if m.shape[2:] == grid else F.interpolate(m, size=grid, mode="bilinear", align_corners=False)
             for m in chosen]
    x = torch.cat(parts, dim=1)[0].reshape(sum(p.shape[1] for p in parts), -1).T  # [cells, C]
    x = x - x.mean(0)
    q = min(dim, x.shape[1], max(1, x.shape[0] - 1))
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    y = (x @ v[:q].T).T.reshape(1, q, *grid)
    y = F.interpolate(y, size=hw, mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    y = y / y.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return y.numpy()


def _robust_scale(x: np.ndarray, floor: float) -> np.ndarray:
    """`x` in units of its median over the image's edges, but never of less than `floor`.

    The median makes the weights of a low-contrast photo comparable with a high-contrast
    one; the floor keeps the sensor noise of a flat image from being blown up to the
    size of a real edge.
    """
    med = float(np.median(x)) if x.size else 0.0
    return x / max(med, floor)


class RegionGenerator:
    """The `regions` label generator (module docstring)."""

    name = "regions"
    description = ("regions (offline, a reduced stand-in for SAM): SLIC superpixels merged over a colour + "
                   "pretrained-feature + boundary graph")

    def __init__(self, settings: RegionSettings | None = None, extractor=None) -> None:
        self.options = settings or RegionSettings()
        self._extractor = extractor

    def configure(self, **knobs) -> "RegionGenerator":
        """A generator with other options (the registered instance stays as it is)."""
        unknown = sorted(set(knobs) - set(RegionSettings.__dataclass_fields__))
        if unknown:
            raise InputError(f"unknown regions option {', '.join(unknown)} "
                             f"(options: {', '.join(RegionSettings.__dataclass_fields__)})")
        merged = {**asdict(self.options), **{k: v for k, v in knobs.items() if v is not None}}
        return RegionGenerator(RegionSettings(**merged), self._extractor if "features" not in knobs else None)

    def available(self) -> bool:
        return True

    def extractor(self):
        """The feature extractor, chosen on first use."""
        if self._extractor is None:
            from coseg.features import select_extractor

            self._extractor = select_extractor(self.options.features)
        return self._extractor

    def settings(self) -> dict:
        ex = self.extractor()
        return {**asdict(self.options), "scales": list(self.options.scales),
                "feature_extractor": getattr(ex, "name", type(ex).__name__)}

    def generate(self, image: np.ndarray) -> np.ndarray:
        """[H, W, 3] float32 in [0, 1] -> [H, W] int32 region ids 1..K (every pixel in a region)."""
        import torch
        import torch.nn.functional as F
        from skimage.color import rgb2lab
        from skimage.segmentation import slic

        s = self.options
        img = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
        if img.ndim != 3 or img.shape[2] != 3:
            raise InputError(f"regions: expected an [H, W, 3] image, got {img.shape}")
        hw0 = img.shape[:2]
        scale = min(1.0, s.work_size / max(hw0))
        hw = (max(1, round(hw0[0] * scale)), max(1, round(hw0[1] * scale)))
        work = img
        if hw != hw0:
            t = torch.from_numpy(img).permute(2, 0, 1)[None]
            work = F.interpolate(t, size=hw, mode="bilinear", align_corners=False, antialias=True)[0]
            work = work.permute(1, 2, 0).numpy()
        feats = _pca_features(self.extractor().extract(work), s.scales, hw, s.feature_dim)
        lab = rgb2lab(work).astype(np.float32) / np.array([100.0, 50.0, 50.0], np.float32)
        sp = slic(work, n_segments=s.superpixels, compactness=s.compactness, start_label=0, convert2lab=True)
        # Pass 1, colour only: superpixels along an edge join their own side (their mean
        # features, blurred over the edge, would keep them apart as thin strips).
        comp = self._merge(sp, lab, None, s.colour_merge_k)
        # Pass 2, colour + features on the colour regions, then small ones are absorbed.
        regions = self._merge(comp, lab, feats, s.merge_k, s.min_area)
        regions = (regions + 1).astype(np.int32)
        if hw != hw0:
            t = torch.from_numpy(regions)[None, None].float()
            regions = F.interpolate(t, size=hw0, mode="nearest")[0, 0].numpy().astype(np.int32)
        return regions

    def _merge(self, labels: np.ndarray, lab: np.ndarray, feats: np.ndarray | None, k: float,
               min_area: float = 0.0) -> np.ndarray:
        """One graph-merging pass over the regions of `labels` ([H, W] ids 0..R-1) -> [H, W] ids 0..K-1."""
        from coseg.labelgen.graph import absorb_small, adjacency, merge_regions, region_means

        s = self.options
        n = int(labels.max()) + 1
        edges, boundary = adjacency(labels, lab)
        if len(edges) == 0:
            return np.zeros_like(labels)
        areas = np.bincount(labels.reshape(-1), minlength=n) / labels.size
        mean_lab = region_means(labels, lab, n)
        d_col = np.linalg.norm(mean_lab[edges[:, 0]] - mean_lab[edges[:, 1]], axis=1)
        weights = (s.color_weight * _robust_scale(d_col, NOISE_FLOOR)
                   + s.boundary_weight * _robust_scale(boundary, NOISE_FLOOR))
        if feats is not None:
            mean_f = region_means(labels, feats, n)
            mean_f /= np.maximum(np.linalg.norm(mean_f, axis=1, keepdims=True), 1e-8)
            d_feat = 1.0 - np.sum(mean_f[edges[:, 0]] * mean_f[edges[:, 1]], axis=1)
            weights = weights + s.feature_weight * _robust_scale(d_feat, NOISE_FLOOR)
        comp = merge_regions(edges, weights, areas, k)
        if min_area > 0:
            comp = absorb_small(edges, weights, comp, areas, min_area)
        return comp[labels]
