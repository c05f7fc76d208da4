"""Evaluation metrics: segmentation (mIoU, pixel accuracy), image quality
(PSNR, SSIM) and feature clustering quality (Calinski-Harabasz, Davies-Bouldin).

Segmentation scores come from one `ConfusionMatrix` accumulated over every
view of a split (not a mean of per-view scores), so a class contributes in
proportion to its pixels over the whole split. mIoU averages over the classes
present in the ground truth: a class that only appears in predictions lowers
the IoU of the classes it was confused with but is not averaged itself.

All functions take numpy arrays (torch CPU tensors convert through
``np.asarray``) and compute in float64.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.ndimage import correlate1d


# ------------------------------------------------------------- segmentation
class ConfusionMatrix:
    """Pixel confusion counts ``matrix[gt, pred]`` accumulated over many label maps.

    Ground-truth pixels with a negative id or an id in `ignore_ids` are not
    counted. A prediction with a negative id or an id in `ignore_ids` (no
    label) counts as a miss for its ground-truth class and as a false positive
    for none. The matrix grows to the largest id seen.

    Args:
        num_classes: initial size; ids beyond it grow the matrix.
        ignore_ids: ids meaning "no label" (255 by the usual convention).
    """

    def __init__(self, num_classes: int = 0, ignore_ids: tuple[int, ...] = (255,)) -> None:
        self.ignore_ids = tuple(int(i) for i in ignore_ids)
        self.matrix = np.zeros((num_classes, num_classes), np.int64)
        """[K, K] counts, rows = ground truth, columns = prediction."""
        self.unlabelled = np.zeros(num_classes, np.int64)
        """[K] ground-truth pixels whose prediction was negative or ignored."""

    @property
    def num_classes(self) -> int:
        return self.matrix.shape[0]

    def _valid(self, ids: np.ndarray) -> np.ndarray:
        ok = ids >= 0
        for i in self.ignore_ids:
            ok &= ids != i
        return ok

    def _grow(self, k: int) -> None:
        if k > self.num_classes:
            m = np.zeros((k, k), np.int64)
            m[:self.num_classes, :self.num_classes] = self.matrix
            self.matrix = m
            self.unlabelled = np.pad(self.unlabelled, (0, k - len(self.unlabelled)))

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one view.

        Args:
            pred: [H, W] integer predicted ids.
            gt: [H, W] integer ground-truth ids.
        """
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
        if pred.dtype.kind not in "iu" or gt.dtype.kind not in "iu":
            raise ValueError("label maps must be integer arrays")
        gt_ok = self._valid(gt)
        pred_ok = self._valid(pred) & gt_ok
        g, p = gt[pred_ok].astype(np.int64), pred[pred_ok].astype(np.int64)
        missed = gt[gt_ok & ~pred_ok].astype(np.int64)
        top = max([int(a.max()) + 1 for a in (g, p, missed) if a.size] + [0])
        self._grow(top)
        k = self.num_classes
        self.matrix += np.bincount(g * k + p, minlength=k * k).reshape(k, k)
        self.unlabelled += np.bincount(missed, minlength=k)

    @property
    def gt_pixels(self) -> np.ndarray:
        """[K] ground-truth pixels per class."""
        return self.matrix.sum(axis=1) + self.unlabelled


def per_class_iou(conf: ConfusionMatrix) -> dict[int, float]:
    """IoU = TP / (TP + FP + FN) of every class present in the ground truth."""
    m = conf.matrix
    tp = np.diag(m).astype(np.float64)
    gt = conf.gt_pixels
    union = gt + m.sum(axis=0) - tp
    return {int(c): float(tp[c] / union[c]) for c in np.flatnonzero(gt > 0)}


def miou(conf: ConfusionMatrix, classes: list[int] | None = None, min_pixel_fraction: float = 0.0) -> float:
    """Mean IoU over the ground-truth classes.

    Args:
        conf: the confusion matrix of a whole split.
        classes: restrict to these ids (those absent from the ground truth are skipped).
        min_pixel_fraction: drop classes with fewer ground-truth pixels than this
            fraction of all counted pixels. Panoptic Lifting evaluates with 0.005
            (0.5 %) so that classes of a handful of pixels, whose IoU is mostly
            noise from boundary and annotation errors, do not dominate the mean;
            use it when comparing to numbers reported that way. 0 keeps all.

    Raises:
        ValueError: no class is left to average (e.g. no ground-truth pixels).
    """
    ious = per_class_iou(conf)
    gt = conf.gt_pixels
    total = gt.sum()
    wanted = set(ious) if classes is None else set(ious) & {int(c) for c in classes}
    keep = sorted(c for c in wanted if gt[c] >= min_pixel_fraction * total)
    if not keep:
        raise ValueError("mIoU undefined: no ground-truth class left to average")
    return float(np.mean([ious[c] for c in keep]))


def pixel_accuracy(conf: ConfusionMatrix) -> float:
    """Fraction of counted ground-truth pixels whose prediction is right."""
    total = conf.gt_pixels.sum()
    if total == 0:
        raise ValueError("pixel accuracy undefined: no ground-truth pixels")
    return float(np.trace(conf.matrix) / total)


# ----------------------------------------------------------- image quality
def _float_pair(img, ref) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(img), np.asarray(ref)
    if a.shape != b.shape:
        raise ValueError(f"image shape {a.shape} differs from reference {b.shape}")
    if a.dtype.kind not in "f" or b.dtype.kind not in "f":
        raise ValueError("images must be float arrays with values in [0, 1]")
    return a.astype(np.float64), b.astype(np.float64)


def psnr(img: np.ndarray, ref: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]: 10 log10(1 / MSE); inf if equal.

    Args:
        img, ref: [H, W, C] or [H, W] float images.
    """
    a, b = _float_pair(img, ref)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(1.0 / mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - size // 2
    w = np.exp(-x ** 2 / (2.0 * sigma ** 2))
    return w / w.sum()


def ssim_map(img: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM averaged over channels, as the 3DGS evaluation computes it.

    Gaussian window 11x11 with sigma 1.5, C1 = 0.01^2, C2 = 0.03^2 (data range
    1), local statistics by separable filtering with zero padding outside the
    image (the 3DGS code's ``conv2d(padding=5)``), so border pixels are
    included and slightly penalised.

    Args:
        img, ref: [H, W, C] or [H, W] float images in [0, 1].

    Returns:
        [H, W] float64 SSIM map.
    """
    a, b = _float_pair(img, ref)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    w = _gaussian_window()

    def blur(x: np.ndarray) -> np.ndarray:
        x = correlate1d(x, w, axis=0, mode="constant", cval=0.0)
        return correlate1d(x, w, axis=1, mode="constant", cval=0.0)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.mean(axis=2)


def ssim(img: np.ndarray, ref: np.ndarray) -> float:
    """Mean SSIM over pixels and channels (see `ssim_map`)."""
    return float(ssim_map(img, ref).mean())


# -------------------------------------------------------- feature clusters
def _clusters(features, labels, subsample: int | None, seed: int):
    x = np.asarray(features, np.float64)
    y = np.asarray(labels).reshape(-1)
    x = x.reshape(-1, x.shape[-1])
    if len(x) != len(y):
        raise ValueError(f"{len(x)} feature vectors but {len(y)} labels")
    keep = y >= 0
    x, y = x[keep], y[keep]
    if subsample is not None and len(x) > subsample:
        idx = np.sort(np.random.default_rng(seed).choice(len(x), subsample, replace=False))
        x, y = x[idx], y[idx]
    _, inv = np.unique(y, return_inverse=True)
    k = int(inv.max()) + 1 if len(inv) else 0
    if not 2 <= k <= len(x) - 1:
        raise ValueError(f"clustering scores need 2 <= clusters <= samples - 1 (got {k} clusters, "
                         f"{len(x)} samples)")
    members = sparse.csr_matrix((np.ones(len(x)), (inv, np.arange(len(x)))), shape=(k, len(x)))
    counts = np.asarray(members.sum(axis=1)).reshape(-1)
    centroids = (members @ x) / counts[:, None]
    return x, inv, counts, centroids


def calinski_harabasz(features: np.ndarray, labels: np.ndarray, subsample: int | None = None,
                      seed: int = 0) -> float:
    """Calinski-Harabasz score (between- over within-cluster dispersion; higher is better).

    ``CH = [sum_k n_k |c_k - c|^2 / (K - 1)] / [sum_i |x_i - c_{y_i}|^2 / (N - K)]``,
    and 1.0 when the within-cluster dispersion is zero, as scikit-learn defines it.

    Args:
        features: [..., D] feature vectors (e.g. an [H, W, D] feature map).
        labels: [...] cluster id per vector; negative ids are ignored.
        subsample: score a seeded random subset of this many vectors (for big maps).
        seed: the subset's random seed.
    """
    x, inv, counts, centroids = _clusters(features, labels, subsample, seed)
    n, k = len(x), len(counts)
    extra = float(np.sum(counts * np.sum((centroids - x.mean(axis=0)) ** 2, axis=1)))
    intra = float(np.sum((x - centroids[inv]) ** 2))
    return 1.0 if intra == 0.0 else extra * (n - k) / (intra * (k - 1))


def davies_bouldin(features: np.ndarray, labels: np.ndarray, subsample: int | None = None,
                   seed: int = 0) -> float:
    """Davies-Bouldin score (mean worst-case cluster similarity; lower is better).

    With s_k the mean Euclidean distance of cluster k's vectors to its centroid
    and d_kj the centroid distance, ``DB = mean_k max_{j != k} (s_k + s_j) / d_kj``;
    0.0 when all s_k or all d_kj are zero, as scikit-learn defines it.

    Args:
        features: [..., D] feature vectors.
        labels: [...] cluster id per vector; negative ids are ignored.
        subsample: score a seeded random subset of this many vectors.
        seed: the subset's random seed.
    """
    x, inv, counts, centroids = _clusters(features, labels, subsample, seed)
    dist = np.linalg.norm(x - centroids[inv], axis=1)
    spread = np.bincount(inv, weights=dist, minlength=len(counts)) / counts
    cdist = np.linalg.norm(centroids[:, None, :] - centroids[None, :, :], axis=2)
    if np.allclose(spread, 0) or np.allclose(cdist, 0):
        return 0.0
    cdist[cdist == 0] = np.inf
    ratio = (spread[:, None] + spread[None, :]) / cdist
    np.fill_diagonal(ratio, -np.inf)
    return float(np.mean(ratio.max(axis=1)))


# ------------------------------------------------------------- class-agnostic segments
class OverlapTable:
    """Pixel overlaps ``counts[segment, gt]`` of arbitrary segment ids with GT ids, over many views.

    Class-agnostic segmentations (segment ids that name no class, e.g. associated
    instance masks) are scored by matching each segment to a GT class: the class
    it overlaps most over all views (`majority_classes`). Negative ids on
    either side and GT `ignore_ids` are not counted.
    """

    def __init__(self, ignore_ids: tuple[int, ...] = (255,)) -> None:
        self.ignore_ids = tuple(int(i) for i in ignore_ids)
        self.counts = sparse.csr_matrix((0, 0), dtype=np.int64)
        """[S, G] overlap counts, rows = segment id, columns = GT id."""

    def update(self, segments: np.ndarray, gt: np.ndarray) -> None:
        segments, gt = np.asarray(segments), np.asarray(gt)
        if segments.shape != gt.shape:
            raise ValueError(f"segment map shape {segments.shape} differs from ground truth {gt.shape}")
        ok = (segments >= 0) & (gt >= 0)
        for i in self.ignore_ids:
            ok &= gt != i
        s, g = segments[ok].astype(np.int64), gt[ok].astype(np.int64)
        shape = (max(self.counts.shape[0], int(s.max(initial=-1)) + 1),
                 max(self.counts.shape[1], int(g.max(initial=-1)) + 1))
        add = sparse.csr_matrix((np.ones(len(s), np.int64), (s, g)), shape=shape)
        self.counts = add + _resized(self.counts, shape)

    def majority_classes(self) -> np.ndarray:
        """[S] GT id each segment overlaps most (-1 for segments that overlap nothing)."""
        c = self.counts.tocsr()
        out = np.asarray(c.argmax(axis=1)).reshape(-1).astype(np.int64)
        out[np.asarray(c.sum(axis=1)).reshape(-1) == 0] = -1
        return out


def _resized(m: sparse.csr_matrix, shape: tuple[int, int]) -> sparse.csr_matrix:
    m = m.tocoo()
    return sparse.csr_matrix((m.data, (m.row, m.col)), shape=shape)


def relabel(segments: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """[H, W] segment ids -> ids through `lut` ([S] int, -1 = none); ids outside it -> -1."""
    segments = np.asarray(segments)
    out = np.full(segments.shape, -1, np.int64)
    ok = (segments >= 0) & (segments < len(lut))
    out[ok] = lut[segments[ok]]
    return out


def best_match_iou(segments: np.ndarray, instances: np.ndarray, ignore_ids: tuple[int, ...] = (0,)) -> dict[int, float]:
    """For every GT instance of one view, the IoU of its best-matching predicted segment.

    Args:
        segments: [H, W] predicted segment ids (negative or 0 = none: such pixels
            still count in the instances' unions, as misses).
        instances: [H, W] GT instance ids; `ignore_ids` (0 = background) are skipped.

    Returns:
        instance id -> max over segments of |segment ∩ instance| / |segment ∪ instance|.
    """
    segments, instances = np.asarray(segments).astype(np.int64), np.asarray(instances).astype(np.int64)
    if segments.shape != instances.shape:
        raise ValueError(f"segment map shape {segments.shape} differs from the instance map {instances.shape}")
    seg = np.where(segments > 0, segments, 0)
    gi = instances.reshape(-1)
    si = seg.reshape(-1)
    n_s, n_g = int(si.max(initial=0)) + 1, int(gi.max(initial=0)) + 1
    inter = sparse.csr_matrix((np.ones(len(si), np.int64), (gi, si)), shape=(n_g, n_s)).tocoo()
    area_g = np.bincount(gi, minlength=n_g)
    area_s = np.bincount(si, minlength=n_s)
    valid = inter.col > 0
    rows, cols, data = inter.row[valid], inter.col[valid], inter.data[valid]
    iou = data / (area_g[rows] + area_s[cols] - data)
    best = np.zeros(n_g)
    np.maximum.at(best, rows, iou)
    present = [g for g in np.flatnonzero(area_g) if g not in ignore_ids]
    return {int(g): float(best[g]) for g in present}
