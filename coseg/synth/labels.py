"""Simulated zero-shot labels: GT class maps corrupted like a 2D segmenter's.

A 2D zero-shot segmenter (MaskDINO with DEVA association in the paper) gets
most of a view right but (a) misplaces object boundaries by a few pixels,
differently in every view, (b) gives a whole object, or part of it, a
plausible wrong class in some views and the right one in others (the
cross-view inconsistency the CoSeg loss is designed against), (c) misses
small objects, which take the label of what surrounds them, and (d) makes a
few blob-shaped mistakes. These are per-view errors: drawn independently in
every view. Beside them it repeats mistakes over a contiguous range of
viewpoints (`coseg.synth.view_errors`): (e) a whole object given its
look-alike class from one side, (f) one 3D part of an object confused from
one side, (g) a mask overshooting an edge by an amount that depends on the
view direction. `simulate_labels` applies the effects in the order (e, f),
(b), (c), (a with g: bleeding masks, then a smooth warp), (d). Every random
choice is seeded by (seed, view, instance) or (seed, instance), so the
result is deterministic and independent of the order views are generated
in. Pixel quantities are given at a 320-pixel-wide image and scale with
the width. `noise_preset` gives the settings of the three documented mixes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from coseg.synth.presets import PRESETS

#: Plausible confusions of a zero-shot segmenter, by class name.
CONFUSIONS = {
    "floor": ("rug",), "wall": ("picture", "cabinet", "ceiling"), "ceiling": ("wall",),
    "table": ("cabinet", "box", "chair"), "chair": ("sofa", "table"), "sofa": ("chair", "bed"),
    "cabinet": ("table", "box", "wall"), "bed": ("sofa", "table"), "lamp": ("plant", "vase"),
    "vase": ("lamp", "plant", "box"), "book": ("box", "picture"), "plant": ("vase", "lamp"),
    "rug": ("floor",), "picture": ("wall", "book"), "box": ("cabinet", "book", "table"),
    "ground": ("table",),
}
#: Large "stuff" regions are only ever mislabelled in part.
STUFF = ("floor", "wall", "ceiling", "ground")
_REF_WIDTH = 320.0


@dataclass
class LabelNoiseConfig:
    """Strengths of the simulated segmenter errors; the defaults are the `mixed` preset (both kinds, each
    weaker than alone, so that the raw labels stay about as good as those of a real 2D segmenter)."""

    confusion_mean: float = 0.08
    """Mean over instances of the per-view probability that an instance (or part of it) gets a wrong class."""
    confusion_concentration: float = 1.0
    """Beta concentration of the per-instance probabilities: small = a few instances often wrong, most rarely."""
    confusion_max: float = 0.6
    """Cap on the per-instance probability, so every instance is right in most views (recoverable in 3D)."""
    partial_fraction: float = 0.5
    """Fraction of wrong-class events that hit only a half-plane cut of the instance (always for floor/wall/ceiling)."""
    small_area: float = 0.002
    """Instances covering less than this fraction of the image may be missed..."""
    miss_probability: float = 0.6
    """...with this probability per view; they take the label of the surrounding region."""
    bleed_probability: float = 0.25
    """Per (instance, view) probability that the mask bleeds over its neighbours."""
    bleed_max_px: int = 3
    """Largest bleed radius (pixels at 320 wide); the radius is drawn from 1..max."""
    jitter_max_px: float = 2.5
    """Largest amplitude of the per-view smooth boundary warp (pixels at 320 wide), drawn uniformly per view."""
    blobs_per_view: float = 0.5
    """Mean (Poisson) number of blob-shaped errors per view."""
    blob_radius: float = 0.04
    """Largest blob radius as a fraction of the image width."""
    object_sector_probability: float = 0.15
    """Probability that an instance (not floor/wall/ceiling) takes one look-alike class in every view from its error range."""
    part_sector_probability: float = 0.1
    """Probability that one side of a fixed plane through an instance takes one wrong class in every view from its error range."""
    boundary_bias_probability: float = 0.3
    """Probability that an instance's mask overshoots its edges by an amount that depends on the view direction..."""
    boundary_bias_px: float = 4.0
    """...by at most this many pixels (at 320 wide), seen from the instance's bias direction."""
    sector_fraction: float = 0.4
    """Share of the cameras that see an instance lying in its error range (a contiguous arc of view directions)."""

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        for name in ("confusion_mean", "confusion_max", "partial_fraction", "small_area", "miss_probability",
                     "bleed_probability", "object_sector_probability", "part_sector_probability",
                     "boundary_bias_probability", "sector_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"label noise {name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("confusion_concentration", "bleed_max_px", "jitter_max_px", "blobs_per_view", "blob_radius",
                     "boundary_bias_px"):
            if getattr(self, name) < 0:
                raise ValueError(f"label noise {name} must be >= 0, got {getattr(self, name)}")


def noise_preset(name: str, **overrides) -> LabelNoiseConfig:
    """Settings of a documented mix: "mixed" (the default: both kinds), "per-view" (only errors drawn
    independently in every view), "correlated" (only view-correlated errors) or "none"; `overrides`
    change single settings.

    Raises:
        ValueError: unknown name or setting.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown label-noise mix {name!r} (known: {', '.join(PRESETS)})")
    return replace(LabelNoiseConfig(), **{**PRESETS[name], **overrides})


def confusion_ids(classes: dict[int, str]) -> dict[int, list[int]]:
    """Class id -> ids of its plausible confusions that exist in `classes`."""
    by_name = {v: k for k, v in classes.items()}
    return {k: [by_name[c] for c in CONFUSIONS.get(name, ()) if c in by_name] for k, name in classes.items()}


def instance_error_rates(n_instances: int, seed: int, cfg: LabelNoiseConfig) -> np.ndarray:
    """[I] per-instance probability of a wrong-class event in a view (Beta distributed, capped)."""
    rng = np.random.default_rng([seed, 2])
    m, c = cfg.confusion_mean, cfg.confusion_concentration
    if m <= 0.0 or c <= 0.0:
        return np.full(n_instances, min(m, cfg.confusion_max))
    return np.minimum(rng.beta(max(m * c, 1e-3), max((1 - m) * c, 1e-3), n_instances), cfg.confusion_max)


def simulate_labels(gt: np.ndarray, instances: np.ndarray, instance_class: np.ndarray, rates: np.ndarray,
                    confusions: dict[int, list[int]], stuff_ids: set[int], seed: int, view: int,
                    cfg: LabelNoiseConfig, view_errors=None, points: np.ndarray | None = None) -> np.ndarray:
    """Corrupt one view's GT like a zero-shot segmenter would.

    Args:
        gt: [H, W] uint8 GT class ids.
        instances: [H, W] int32 instance ids (-1 = background).
        instance_class: [I] class id of every instance.
        rates: [I] per-instance wrong-class probabilities (`instance_error_rates`).
        confusions: class id -> plausible wrong class ids (`confusion_ids`).
        stuff_ids: class ids only ever mislabelled in part.
        seed, view: seed of the scene and index of the view.
        cfg: effect strengths.
        view_errors: this view's view-correlated errors (`view_errors.ViewErrors`), or None.
        points: [H, W, 3] world hit points, needed when `view_errors` has part errors.

    Returns:
        [H, W] uint8 raw label ids.
    """
    H, W = gt.shape
    px = W / _REF_WIDTH
    out = gt.copy()
    boxes = ndimage.find_objects(instances + 1)
    visible = [k for k, sl in enumerate(boxes) if sl is not None]
    if view_errors is not None:
        _apply_view_errors(out, instances, boxes, view_errors, points)
    missed, bleeding, areas = [], [], {}
    for k in visible:
        rng = np.random.default_rng([seed, 1, view, k])
        sl = boxes[k]
        mask = instances[sl] == k
        cls = int(instance_class[k])
        areas[k] = int(mask.sum())
        if areas[k] < cfg.small_area * H * W and rng.random() < cfg.miss_probability:
            missed.append(k)
            continue
        if rng.random() < rates[k] and confusions.get(cls):
            wrong = confusions[cls][int(rng.integers(len(confusions[cls])))]
            if cls in stuff_ids or rng.random() < cfg.partial_fraction:
                mask = mask & _half_plane(mask, rng)
            out[sl][mask] = wrong
        radius = 0
        if rng.random() < cfg.bleed_probability and cfg.bleed_max_px > 0:
            radius = max(1, int(round(rng.integers(1, cfg.bleed_max_px + 1) * px)))
        if view_errors is not None and k in view_errors.bias_px:
            radius = max(radius, int(round(view_errors.bias_px[k] * px)))
        if radius > 0:
            bleeding.append((k, radius))
    for k in missed:
        _fill_from_surroundings(out, instances, boxes[k], k)
    # Larger instances bleed first; each bleeding instance keeps its own pixels,
    # so two bleeding neighbours never cut slivers out of each other.
    before = out.copy()
    for k, radius in sorted(bleeding, key=lambda kr: (-areas[kr[0]], kr[0])):
        _bleed(out, before, instances, boxes[k], k, radius)
    rng = np.random.default_rng([seed, 3, view])
    out = _warp(out, rng.uniform(0.0, cfg.jitter_max_px) * px, rng)
    for _ in range(int(rng.poisson(cfg.blobs_per_view))):
        _blob(out, confusions, cfg.blob_radius * W, rng)
    return out


def _apply_view_errors(out: np.ndarray, instances: np.ndarray, boxes, errors, points: np.ndarray | None) -> None:
    """Whole-object (e) and 3D-part (f) view-correlated confusions of the instances in view."""
    for k, wrong in errors.object_class.items():
        if k < len(boxes) and boxes[k] is not None:
            sl = boxes[k]
            out[sl][instances[sl] == k] = wrong
    for k, (normal, offset, wrong) in errors.part_class.items():
        if k < len(boxes) and boxes[k] is not None:
            if points is None:
                raise ValueError("part errors need the view's world hit points")
            sl = boxes[k]
            out[sl][(instances[sl] == k) & (points[sl] @ normal > offset)] = wrong


def _half_plane(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[h, w] bool: one side of a random line through the mask (near its centroid)."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    ext = max(np.ptp(ys), np.ptp(xs), 1)
    phi = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(-0.25, 0.25) * ext
    jj, ii = np.mgrid[0:mask.shape[0], 0:mask.shape[1]]
    return (ii - cx) * np.cos(phi) + (jj - cy) * np.sin(phi) > offset


def _grown(sl: tuple[slice, slice], shape, r: int) -> tuple[slice, slice]:
    return tuple(slice(max(s.start - r, 0), min(s.stop + r, n)) for s, n in zip(sl, shape))


def _fill_from_surroundings(out: np.ndarray, instances: np.ndarray, sl, k: int) -> None:
    """Give instance k the most common label in a 2-pixel ring around it."""
    g = _grown(sl, out.shape, 2)
    mask = instances[g] == k
    ring = ndimage.binary_dilation(mask, iterations=2) & ~mask
    if ring.any():
        out[g][mask] = np.bincount(out[g][ring]).argmax()


def _bleed(out: np.ndarray, before: np.ndarray, instances: np.ndarray, sl, k: int, radius: int) -> None:
    """Grow instance k's (majority) label `radius` pixels over its neighbours, restoring its own pixels."""
    g = _grown(sl, out.shape, radius)
    mask = instances[g] == k
    label = np.bincount(before[g][mask]).argmax()
    grown = ndimage.binary_dilation(mask, iterations=radius)
    out[g][grown & ~mask] = label
    out[g][mask] = before[g][mask]


def _warp(labels: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Resample `labels` (nearest) through a smooth random displacement of `amplitude` pixels."""
    H, W = labels.shape
    coarse = rng.normal(0.0, 1.0, (2, 4, 5)) * amplitude
    dy, dx = (ndimage.zoom(c, (H / 4, W / 5), order=1, mode="nearest", grid_mode=True)[:H, :W] for c in coarse)
    jj, ii = np.mgrid[0:H, 0:W]
    sy = np.clip(np.rint(jj + dy), 0, H - 1).astype(np.int64)
    sx = np.clip(np.rint(ii + dx), 0, W - 1).astype(np.int64)
    return labels[sy, sx]


def _blob(out: np.ndarray, confusions: dict[int, list[int]], max_radius: float, rng: np.random.Generator) -> None:
    """Paint an elliptical blob with a plausible confusion of the class under its centre."""
    H, W = out.shape
    cy, cx = rng.uniform(0, H), rng.uniform(0, W)
    ry, rx = rng.uniform(0.3, 1.0, 2) * max_radius
    alternatives = confusions.get(int(out[min(int(cy), H - 1), min(int(cx), W - 1)]), [])
    if not alternatives or rx < 0.5 or ry < 0.5:
        return
    jj, ii = np.mgrid[0:H, 0:W]
    inside = ((jj + 0.5 - cy) / ry) ** 2 + ((ii + 0.5 - cx) / rx) ** 2 < 1.0
    out[inside] = alternatives[int(rng.integers(len(alternatives)))]


class LabelConsistency:
    """Measures cross-view inconsistency of label maps, instance by instance.

    For every view and every instance covering at least `min_pixels`, the
    majority label inside the instance's GT mask is recorded.
    """

    def __init__(self, instance_class: np.ndarray, min_pixels: int):
        self.instance_class = np.asarray(instance_class)
        self.min_pixels = int(min_pixels)
        self.majorities: dict[int, list[int]] = {}

    def add(self, instances: np.ndarray, labels: np.ndarray) -> None:
        """Record one view: [H, W] instance ids (-1 = none) and [H, W] label ids."""
        keep = instances >= 0
        n_lab = int(labels.max()) + 1
        counts = np.bincount(instances[keep].astype(np.int64) * n_lab + labels[keep],
                             minlength=len(self.instance_class) * n_lab).reshape(-1, n_lab)
        for k in np.flatnonzero(counts.sum(1) >= self.min_pixels):
            self.majorities.setdefault(int(k), []).append(int(counts[k].argmax()))

    def summary(self) -> dict:
        """Counts and fractions of instances whose majority label changes between views.

        Returns:
            {"instances_in_2plus_views", "inconsistent_instances" (fraction of those
            with more than one majority label over views), "wrong_instance_views"
            (fraction of (instance, view) pairs whose majority is not the GT class)}.
        """
        multi = {k: v for k, v in self.majorities.items() if len(v) >= 2}
        pairs = [(k, m) for k, v in self.majorities.items() for m in v]
        return {
            "instances_in_2plus_views": len(multi),
            "inconsistent_instances": float(np.mean([len(set(v)) > 1 for v in multi.values()])) if multi else 0.0,
            "wrong_instance_views": float(np.mean([m != self.instance_class[k] for k, m in pairs])) if pairs else 0.0,
        }
