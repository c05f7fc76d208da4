"""CoSeg losses: JS pixel loss (hand computation, limits, bound), KL regulariser, CE."""

import math

import numpy as np
import pytest
import torch

from coseg.errors import InputError
from coseg.segment.losses import CoSegLossConfig, ce_loss, class_weights, js_loss, js_loss_bound, kl_regulariser


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: one thread avoids OpenMP contention on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _js_reference(p: np.ndarray, y: np.ndarray, pi: float) -> float:
    """Direct float64 evaluation of the GJS definition with m and both KL terms."""
    total = 0.0
    for pr, lab in zip(p, y):
        onehot = np.zeros_like(pr)
        onehot[lab] = 1.0
        m = pi * onehot + (1 - pi) * pr
        kl_label = sum(o * math.log(o / mm) for o, mm in zip(onehot, m) if o > 0)
        kl_pred = sum(q * math.log(q / mm) for q, mm in zip(pr, m) if q > 0)
        total += (pi * kl_label + (1 - pi) * kl_pred) / (-(1 - pi) * math.log(1 - pi))
    return total / len(y)


@pytest.mark.parametrize("pi", [0.1, 0.5, 0.9])
def test_js_matches_hand_computation(pi):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(7, 4)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, 4, size=7)
    got = js_loss(torch.from_numpy(p), torch.from_numpy(y), pi)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(_js_reference(p, y, pi), rel=1e-10)


def test_js_zero_when_prediction_equals_label_and_no_nan():
    p = torch.eye(3, dtype=torch.float64, requires_grad=True)
    loss = js_loss(p, torch.tensor([0, 1, 2]), 0.5)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    loss.backward()
    assert torch.isfinite(p.grad).all()


def test_js_tends_to_cross_entropy_as_pi_goes_to_zero():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.05, 0.9, 0.05], [0.3, 0.3, 0.4]], dtype=torch.float64)
    y = torch.tensor([0, 2, 1])
    ce = ce_loss(p, y).item()
    gaps = [abs(js_loss(p, y, pi).item() - ce) for pi in (1e-2, 1e-4, 1e-6)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-4 * ce


def test_js_bounded_for_confidently_wrong_predictions():
    pi = 0.5
    wrong = torch.tensor([[0.0, 1.0, 0.0], [1e-9, 1 - 2e-9, 1e-9]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    loss = js_loss(wrong, y, pi).item()
    assert math.isfinite(loss)
    assert loss == pytest.approx(js_loss_bound(pi), rel=1e-6)
    # CE on the same predictions is unbounded.
    assert ce_loss(wrong, y).item() > 10 * loss
    rng = np.random.default_rng(0)
    p = torch.from_numpy(rng.dirichlet(np.ones(5), size=200))
    assert js_loss(p, torch.from_numpy(rng.integers(0, 5, 200)), pi).item() <= js_loss_bound(pi)


def test_ignore_index_and_bad_ids():
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]], dtype=torch.float64)
    only_second = js_loss(p[1:], torch.tensor([0]), 0.5)
    assert js_loss(p, torch.tensor([-1, 0]), 0.5).item() == pytest.approx(only_second.item())
    assert js_loss(p, torch.tensor([-1, -1]), 0.5).item() == 0.0
    with pytest.raises(ValueError, match="label ids"):
        js_loss(p, torch.tensor([0, 2]), 0.5)
    with pytest.raises(ValueError, match="pi_label"):
        js_loss(p, torch.tensor([0, 1]), 1.0)


def test_kl_regulariser_hand_case():
    # Three points on a line: 0 and 1 are mutual nearest neighbours, 2 is far.
    xyz = np.array([[0.0, 0, 0], [1.0, 0, 0], [10.0, 0, 0]])
    f = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]], dtype=torch.float64)
    got = kl_regulariser(f, xyz, num_samples=3, k=1, rng=np.random.default_rng(0)).item()
    p = [np.array([0.5, 0.5]), np.array([0.75, 0.25]), np.exp([5, -5]) / np.exp([5, -5]).sum()]
    kl = lambda a, b: float((a * np.log(a / b)).sum())  # noqa: E731
    # Neighbours: 0 -> 1, 1 -> 0, 2 -> 1.
    expected = (kl(p[0], p[1]) + kl(p[1], p[0]) + kl(p[2], p[1])) / 3
    assert got == pytest.approx(expected, rel=1e-10)


def test_kl_regulariser_zero_for_constant_features_and_has_gradient():
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(50, 3))
    f = torch.ones(50, 4, requires_grad=True)
    assert kl_regulariser(f, xyz, 10, 4, rng).item() == pytest.approx(0.0, abs=1e-7)
    g = torch.randn(50, 4, requires_grad=True)
    kl_regulariser(g, xyz, 10, 4, rng).backward()
    assert g.grad.abs().sum() > 0


def test_class_weights_hand_case():
    # freq = 0.8, 0.2, 0; beta 1 -> raw weights 1.25, 5, 0; sum freq * w = 2 -> 0.625, 2.5, 0.
    w = class_weights(np.array([80, 20, 0]), 1.0)
    assert w.tolist() == pytest.approx([0.625, 2.5, 0.0])
    assert class_weights(np.array([80, 20, 0]), 0.0).tolist() == pytest.approx([1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="class_balance"):
        class_weights(np.array([1, 1]), -0.5)


@pytest.mark.parametrize("loss_fn", ["js", "ce"])
def test_weighted_pixel_loss_is_the_weighted_mean_of_per_pixel_losses(loss_fn):
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(9, 3))
    p = torch.from_numpy(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    y = torch.from_numpy(np.array([0, 1, 2, 2, 1, 0, -1, 2, 1]))
    w = torch.tensor([0.5, 2.0, 3.0])
    fn = (lambda pp, yy, **kw: js_loss(pp, yy, 0.5, **kw)) if loss_fn == "js" else ce_loss
    per_pixel = [fn(p[i:i + 1], y[i:i + 1]).item() for i in range(9) if y[i] >= 0]
    ws = [w[int(v)].item() for v in y if v >= 0]
    expected = sum(a * b for a, b in zip(per_pixel, ws)) / sum(ws)
    assert fn(p, y, weights=w).item() == pytest.approx(expected, rel=1e-10)
    assert fn(p, y, weights=torch.ones(3)).item() == pytest.approx(fn(p, y).item(), rel=1e-12)


@pytest.mark.parametrize("kw", [dict(class_balance=-1.0), dict(pi_label=1.0), dict(pixel_loss="mse")])
def test_loss_config_rejects_bad_settings_with_a_clear_error(kw):
    with pytest.raises(InputError, match=next(iter(kw))):  # the message names the setting
        CoSegLossConfig(**kw)
