"""Hard-id metrics (coseg.segment.compactness): one-hot hard ids and the object / segment shares."""

import numpy as np
import pytest
import torch

from coseg.segment.compactness import compactness, hard_id_colors, neighbour_agreement


def test_hard_id_colors_are_the_one_hot_arg_max():
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5], [0.0, 0.0, 0.2]])
    assert hard_id_colors(logits).tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1]]


def test_compactness_shares():
    # class 0: 4 Gaussians, 3 in segment 7 (share 3/4); class 1: 2 Gaussians, both in segment 9 (share 1).
    gt = np.array([0, 0, 0, 0, 1, 1, -1])
    segments = np.array([7, 7, 7, 9, 9, 9, 7])  # the last Gaussian has no ground truth: left out
    c = compactness(segments, gt)
    assert c["object_share"] == pytest.approx((3 / 4 + 1) / 2)
    # segment 7: 3 Gaussians, all class 0 (1); segment 9: 3 Gaussians, 2 of class 1 (2/3).
    assert c["segment_share"] == pytest.approx((1 + 2 / 3) / 2)
    assert c["gaussians_with_gt"] == 6


def test_one_segment_per_class_is_fully_compact_and_one_segment_for_all_is_not():
    gt = np.repeat(np.arange(4), 5)
    assert compactness(gt + 10, gt) == {"object_share": 1.0, "segment_share": 1.0, "gaussians_with_gt": 20}
    merged = compactness(np.zeros(20, int), gt)
    assert merged["object_share"] == 1.0 and merged["segment_share"] == pytest.approx(0.25)


def test_compactness_without_ground_truth_is_nan():
    c = compactness(np.array([1, 2]), np.array([-1, -1]))
    assert np.isnan(c["object_share"]) and c["gaussians_with_gt"] == 0


def test_neighbour_agreement_tells_a_clean_field_from_a_speckled_one():
    rng = np.random.default_rng(0)
    xyz = np.concatenate([rng.normal(size=(300, 3)) * 0.1, rng.normal(size=(300, 3)) * 0.1 + 5.0])
    clean = np.repeat([3, 8], 300)
    assert neighbour_agreement(xyz, clean) == pytest.approx(1.0)
    speckled = rng.integers(0, 4, size=600)
    assert neighbour_agreement(xyz, speckled) == pytest.approx(0.25, abs=0.05)
    one_wrong = clean.copy()
    one_wrong[0] = 8  # its 8 neighbours disagree with it, and it with each one that has it as a neighbour
    assert 0.97 < neighbour_agreement(xyz, one_wrong) < 1.0
    assert np.isnan(neighbour_agreement(xyz[:1], clean[:1]))
