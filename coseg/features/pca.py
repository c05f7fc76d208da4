"""PCA of multi-scale feature maps to 64-d + normalisation (paper Sec. 4.1), streamed.

One PCA per scale is fitted across all training views of a scene without
holding every feature map in memory:

1. pass 1 (`FeatureReducer.fit`): extract each view's features, draw a random
   subsample of its feature vectors (``samples_per_view`` per scale) and, when
   a spill folder is given, store the map as float16 so it need not be
   extracted again;
2. fit the PCA (mean + top eigenvectors of the float64 covariance of the
   pooled samples);
3. pass 2 (`FeatureReducer.transform_views`): project each view's maps to
   ``dim`` channels and normalise them (``norm``, below).

Normalisation (``norm``): ``"l2"`` divides every projected vector by its own
length (the paper's reading, Sec. 4.1); ``"rms"`` (a departure,
docs/method.md) divides every vector of a scale by one constant, the RMS length
of the scale's fitted samples. The PCA output is centred, so under ``"l2"`` a
pixel whose feature is close to the scene's mean (a colour near the average
colour, for the weight-free extractor) becomes a unit vector pointing in an
arbitrary, noise-driven direction; ``"rms"`` keeps it near zero and keeps the
average length at 1 as ``"l2"`` does.

When a scale has fewer than ``dim`` channels (the weight-free `appearance`
extractor) its PCA keeps all of them (a rotation + centring), so the output
width is ``min(dim, D)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

log = logging.getLogger(__name__)


NORMS = ("rms", "l2")
"""Normalisations of the projected features (module docstring)."""


@dataclass
class PCAProjection:
    """Centring + projection of one scale: x -> normalise((x - mean) @ components.T)."""

    mean: np.ndarray
    """[D] float32."""
    components: np.ndarray
    """[k, D] float32, rows are unit principal directions, largest variance first."""
    rms: float = 1.0
    """RMS length of the fitted samples' principal coordinates (the ``"rms"`` normalisation's divisor)."""

    def project(self, features: np.ndarray) -> np.ndarray:
        """[..., D] -> [..., k] float32 principal coordinates (centred, not normalised)."""
        return ((np.asarray(features, np.float32) - self.mean) @ self.components.T).astype(np.float32)

    def apply(self, features: np.ndarray, norm: str = "l2", eps: float = 1e-8) -> np.ndarray:
        """[..., D] -> [..., k] float32 principal coordinates, normalised by `norm`.

        ``"l2"``: every vector to unit length; ``"rms"``: all divided by `rms` (module docstring).
        """
        y = self.project(features)
        if norm == "rms":
            return (y / max(self.rms, eps)).astype(np.float32)
        if norm != "l2":
            raise ValueError(f"unknown feature normalisation {norm!r} ({', '.join(NORMS)})")
        return (y / (np.linalg.norm(y, axis=-1, keepdims=True) + eps)).astype(np.float32)


def fit_pca(samples: np.ndarray, dim: int = 64) -> PCAProjection:
    """Fit a PCA on feature vectors.

    Args:
        samples: [S, D] feature vectors (S >= 2).
        dim: number of components kept (at most D, and at most S when S < D).

    Returns:
        The `PCAProjection`; each component's sign is fixed so that its
        largest-magnitude entry is positive (deterministic output), and its
        ``rms`` is the RMS length of the samples' principal coordinates.
    """
    x = np.asarray(samples, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"fit_pca needs [S >= 2, D] samples, got {x.shape}")
    mean = x.mean(0)
    k = min(dim, x.shape[1])
    if x.shape[0] < x.shape[1]:
        # Fewer samples than channels (wide maps, few views): the SVD of the centred samples
        # costs O(S^2 D) instead of the D x D covariance's O(D^3); same principal directions.
        # The SVD yields S directions at most, so k is also at most S.
        comps = np.linalg.svd(x - mean, full_matrices=False)[2][:k]
        k = len(comps)
    else:
        cov = np.cov(x - mean, rowvar=False).reshape(x.shape[1], x.shape[1])
        evals, evecs = np.linalg.eigh(cov)
        comps = evecs[:, np.argsort(evals)[::-1][:k]].T
    sign = np.sign(comps[np.arange(k), np.abs(comps).argmax(1)])
    comps *= np.where(sign == 0, 1.0, sign)[:, None]
    rms = float(np.sqrt(np.mean(np.sum(((x - mean) @ comps.T) ** 2, axis=1))))
    return PCAProjection(mean.astype(np.float32), comps.astype(np.float32), rms)


def sample_vectors(feature_map: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Up to `count` random feature vectors [count, D] from a map [h, w, D]."""
    flat = feature_map.reshape(-1, feature_map.shape[-1])
    take = rng.choice(len(flat), size=min(count, len(flat)), replace=False)
    return flat[np.sort(take)].astype(np.float32)


class FeatureReducer:
    """Two-pass, streaming PCA-to-`dim` + normalisation of an extractor's features.

    Args:
        extractor: object with ``extract(image) -> list of 4 [h, w, D] maps``.
        dim: output channels per scale (64 in the paper).
        samples_per_view: feature vectors sampled per view and scale for the fit.
        seed: seed of the sampling.
        spill_dir: folder for float16 copies of the raw maps between the two
            passes; None re-extracts every view in pass 2 instead.
        norm: ``"rms"`` or ``"l2"`` (module docstring).
    """

    def __init__(self, extractor, dim: int = 64, samples_per_view: int = 4096, seed: int = 0,
                 spill_dir: str | Path | None = None, norm: str = "l2") -> None:
        if norm not in NORMS:
            raise ValueError(f"unknown feature normalisation {norm!r} ({', '.join(NORMS)})")
        self.norm = norm
        self.extractor = extractor
        self.dim = dim
        self.samples_per_view = samples_per_view
        self.rng = np.random.default_rng(seed)
        self.spill_dir = Path(spill_dir) if spill_dir is not None else None
        self.projections: list[PCAProjection] = []
        self._load_image: Callable[[int], np.ndarray] | None = None
        self._n_views = 0

    def fit(self, load_image: Callable[[int], np.ndarray], n_views: int) -> Iterator[int]:
        """Pass 1: extract, sample and (optionally) spill every view, then fit.

        Args:
            load_image: view index -> [H, W, 3] float32 image.
            n_views: number of views.

        Yields:
            The index of each processed view (progress; the caller may stop).
        """
        self._load_image, self._n_views = load_image, n_views
        pooled: list[list[np.ndarray]] = []
        for i in range(n_views):
            maps = self.extractor.extract(load_image(i))
            if not pooled:
                pooled = [[] for _ in maps]
            for s, m in enumerate(maps):
                pooled[s].append(sample_vectors(m, self.samples_per_view, self.rng))
            if self.spill_dir is not None:
                self.spill_dir.mkdir(parents=True, exist_ok=True)
                np.savez(self.spill_dir / f"view_{i:05d}.npz", *[m.astype(np.float16) for m in maps])
            yield i
        if not pooled:
            raise ValueError("FeatureReducer.fit: no views")
        self.projections = [fit_pca(np.concatenate(p), self.dim) for p in pooled]
        log.info("feature PCA fitted on %d views: %s -> %s channels", n_views,
                 [p.components.shape[1] for p in self.projections],
                 [p.components.shape[0] for p in self.projections])

    def transform(self, maps: list[np.ndarray]) -> list[np.ndarray]:
        """Project one view's raw maps: 4 x [h, w, D] -> 4 x [h, w, min(dim, D)]."""
        if not self.projections:
            raise RuntimeError("FeatureReducer.transform called before fit")
        return [p.apply(m, self.norm) for p, m in zip(self.projections, maps)]

    def transform_views(self) -> Iterator[tuple[int, list[np.ndarray]]]:
        """Pass 2: yield (view index, reduced maps) for every view given to `fit`."""
        for i in range(self._n_views):
            if self.spill_dir is not None:
                path = self.spill_dir / f"view_{i:05d}.npz"
                with np.load(path) as z:
                    maps = [z[f"arr_{s}"].astype(np.float32) for s in range(len(z.files))]
                path.unlink()
            else:
                maps = self.extractor.extract(self._load_image(i))
            yield i, self.transform(maps)
