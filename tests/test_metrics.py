"""Metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coseg.metrics import (ConfusionMatrix, calinski_harabasz, davies_bouldin, miou, per_class_iou,
                           pixel_accuracy, psnr, ssim, ssim_map)


def _three_class_example() -> ConfusionMatrix:
    gt = np.array([[0, 0, 1, 255], [1, 1, 2, 2]])
    pred = np.array([[0, 1, 1, 2], [1, 1, 2, 0]])
    conf = ConfusionMatrix()
    conf.update(pred, gt)
    return conf


def test_confusion_matrix_3x3_by_hand():
    conf = _three_class_example()
    # rows gt, cols pred; the 255 pixel is ignored
    np.testing.assert_array_equal(conf.matrix, [[1, 1, 0], [0, 3, 0], [1, 0, 1]])
    ious = per_class_iou(conf)
    assert ious == pytest.approx({0: 1 / 3, 1: 3 / 4, 2: 1 / 2})
    assert miou(conf) == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert miou(conf, classes=[1, 2, 7]) == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert pixel_accuracy(conf) == pytest.approx(5 / 7)


def test_accumulates_over_views_and_unlabelled_predictions():
    conf = _three_class_example()
    # second view: a class only predicted (5), an unlabelled prediction (-1), a negative gt
    conf.update(np.array([[5, -1, 0]]), np.array([[0, 0, -3]]))
    assert conf.num_classes == 6
    np.testing.assert_array_equal(conf.matrix[0], [1, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(conf.unlabelled, [1, 0, 0, 0, 0, 0])
    # class 0: TP 1, FN 3 (pred 1, pred 5, unlabelled), FP 1 (gt 2) -> 1/5; class 5 not averaged
    assert per_class_iou(conf) == pytest.approx({0: 1 / 5, 1: 3 / 4, 2: 1 / 2})
    assert pixel_accuracy(conf) == pytest.approx(5 / 9)


def test_min_pixel_fraction_drops_tiny_classes():
    gt = np.zeros((10, 30), np.int32)
    gt[0, 0] = 3                       # 1 of 300 pixels = 0.33 %
    pred = np.zeros_like(gt)           # class 3 missed entirely
    conf = ConfusionMatrix()
    conf.update(pred, gt)
    assert miou(conf) == pytest.approx((299 / 300 + 0.0) / 2)
    assert miou(conf, min_pixel_fraction=0.005) == pytest.approx(299 / 300)
    with pytest.raises(ValueError, match="mIoU undefined"):
        miou(ConfusionMatrix())


def test_confusion_rejects_mismatched_maps():
    with pytest.raises(ValueError, match="shape"):
        ConfusionMatrix().update(np.zeros((2, 2), int), np.zeros((2, 3), int))


def test_psnr_known_mse():
    ref = np.zeros((4, 5, 3), np.float32)
    img = ref + np.float32(0.1)        # MSE 0.01 -> 20 dB
    assert psnr(img, ref) == pytest.approx(20.0, abs=1e-5)
    assert psnr(ref, ref) == float("inf")
    with pytest.raises(ValueError, match="float"):
        psnr(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))


def _ssim_3dgs_torch(a: np.ndarray, b: np.ndarray) -> float:
    """The 3DGS evaluation's SSIM written directly with conv2d (independent twin)."""
    x = np.arange(11) - 5
    g = np.exp(-x ** 2 / (2 * 1.5 ** 2))
    g = torch.tensor(g / g.sum())
    c = a.shape[2]
    win = (g[:, None] @ g[None, :]).expand(c, 1, 11, 11).contiguous()
    ta = torch.tensor(a, dtype=torch.float64).permute(2, 0, 1)[None]
    tb = torch.tensor(b, dtype=torch.float64).permute(2, 0, 1)[None]
    conv = lambda t: F.conv2d(t, win, padding=5, groups=c)  # noqa: E731
    mu1, mu2 = conv(ta), conv(tb)
    s11, s22, s12 = conv(ta * ta) - mu1 ** 2, conv(tb * tb) - mu2 ** 2, conv(ta * tb) - mu1 * mu2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s11 + s22 + c2))
    return float(m.mean())


def test_ssim_identical_constant_and_reference():
    rng = np.random.default_rng(0)
    a = rng.random((24, 31, 3)).astype(np.float32)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    # constant images: away from the zero-padded border, SSIM = (2xy + C1) / (x^2 + y^2 + C1)
    x, y = 0.2, 0.6
    m = ssim_map(np.full((30, 30), x, np.float32), np.full((30, 30), y, np.float32))
    expect = (2 * x * y + 1e-4) / (x * x + y * y + 1e-4)
    np.testing.assert_allclose(m[5:-5, 5:-5], expect, rtol=1e-5)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
    assert ssim(b, a) == pytest.approx(_ssim_3dgs_torch(b, a), abs=1e-10)
    assert 0 < ssim(b, a) < 1


def test_calinski_harabasz_and_davies_bouldin_by_hand():
    x = np.array([[0.0], [2.0], [10.0], [12.0]])
    y = np.array([0, 0, 1, 1])
    # centroids 1, 11, mean 6: between 2*25 + 2*25 = 100, within 4 -> 100 * 2 / (4 * 1)
    assert calinski_harabasz(x, y) == pytest.approx(50.0)
    # spreads 1, 1; centroid distance 10
    assert davies_bouldin(x, y) == pytest.approx(0.2)

    x = np.array([[0, 0], [2, 0], [10, 0], [10, 4], [0, 10]], float)
    y = np.array([7, 7, 3, 3, 9])       # arbitrary ids
    assert calinski_harabasz(x, y) == pytest.approx(174.0 * 2 / (10.0 * 2))
    expect = (3 / np.sqrt(85) + 3 / np.sqrt(85) + 2 / np.sqrt(164)) / 3
    assert davies_bouldin(x, y) == pytest.approx(expect)


def test_cluster_scores_on_maps_ignore_negative_and_subsample():
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(20, 30, 4))
    labels = rng.integers(0, 3, size=(20, 30))
    feats[labels == 1] += 3.0
    labels[0, :5] = -1
    full = calinski_harabasz(feats, labels)
    kept = labels >= 0
    assert full == pytest.approx(calinski_harabasz(feats[kept], labels[kept]))
    sub = calinski_harabasz(feats, labels, subsample=200, seed=1)
    assert sub == calinski_harabasz(feats, labels, subsample=200, seed=1) and sub != full
    assert davies_bouldin(feats, labels, subsample=200, seed=1) > 0
    with pytest.raises(ValueError, match="clusters"):
        davies_bouldin(feats, np.zeros((20, 30), int))
