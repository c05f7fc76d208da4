"""Densification strategy, optimiser and schedules of the building stage on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from coseg.building.config import BuildConfig
from coseg.building.optim import create_optimizer, create_params, means_lr
from coseg.building.strategy import DensifyStrategy
from coseg.errors import CosegError
from coseg.gaussians import Gaussians, logit


def _model() -> Gaussians:
    """0: small, high grad (clone); 1: large, high grad (split); 2: low grad; 3: transparent; 4: huge."""
    xyz = np.arange(15, dtype=np.float32).reshape(5, 3)
    g = Gaussians.from_points(xyz, np.full((5, 3), 0.5, np.float32),
                              scale=np.array([0.005, 0.05, 0.005, 0.005, 0.5]), opacity=0.5, sh_degree=1)
    g.opacity_logits[3] = logit(np.array([0.001]))[0]
    g.quats[1] = [0.9, 0.1, 0.3, 0.2]
    return g


def _setup(strategy: DensifyStrategy):
    params = create_params(_model(), max_sh_degree=1)
    optimizer = create_optimizer(params, BuildConfig(), extent=1.0)
    initial = {k: v.detach().clone() for k, v in params.items()}
    for p in params.values():  # one step so every Gaussian has Adam moments ...
        p.grad = torch.ones_like(p)
    optimizer.step()
    with torch.no_grad():  # ... then back to the hand-made values
        for k, p in params.items():
            p.copy_(initial[k])
    state = strategy.initialize_state(5)
    state["grad2d"][:] = torch.tensor([5e-3, 5e-3, 1e-5, 0.0, 0.0])
    state["count"][:] = torch.tensor([10.0, 10.0, 10.0, 0.0, 0.0])
    info = {"means2d": torch.zeros(5, 2), "radii": torch.zeros(5, dtype=torch.int32),
            "contrib": torch.zeros(5, dtype=torch.int32), "width": 64, "height": 48}
    return params, optimizer, state, info


def test_clone_split_prune_on_hand_made_case():
    torch.manual_seed(0)
    strategy = DensifyStrategy(start=0, stop=1000, interval=10, reset_interval=100)
    params, optimizer, state, info = _setup(strategy)
    before = {k: v.detach().clone() for k, v in params.items()}
    done = strategy.step_post_backward(params, optimizer, state, 10, info, extent=1.0)
    assert done == {"cloned": 1, "split": 1, "pruned": 1, "reset": 0}
    means = params["means"].detach()
    # kept 0, 2, 4 (1 was split, 3 pruned for opacity, 4 kept: before the first reset), clone of 0, 2 children of 1
    assert means.shape == (6, 3)
    torch.testing.assert_close(means[[0, 1, 2]], before["means"][[0, 2, 4]])
    torch.testing.assert_close(means[3], before["means"][0])
    children_scale = torch.exp(params["scales"].detach()[4:])
    torch.testing.assert_close(children_scale, torch.full((2, 3), 0.05 / 1.6))
    assert (means[4:] - before["means"][1]).norm(dim=1).max() < 0.5  # sampled around the parent
    torch.testing.assert_close(params["quats"].detach()[4:], before["quats"][[1, 1]])
    # Adam moments follow the Gaussians: old ones kept, new ones zero, one param per group
    for group in optimizer.param_groups:
        (p,) = group["params"]
        assert params[group["name"]] is p
        st = optimizer.state[p]
        assert st["exp_avg"].shape == p.shape
        assert torch.all(st["exp_avg"][:3] != 0) and torch.all(st["exp_avg"][3:] == 0)
    assert state["grad2d"].shape == (6,) and float(state["grad2d"].sum()) == 0.0


def test_oversized_pruned_only_after_first_reset():
    strategy = DensifyStrategy(start=0, stop=1000, interval=10, reset_interval=100)
    params, optimizer, state, info = _setup(strategy)
    state["grad2d"].zero_()
    done = strategy.step_post_backward(params, optimizer, state, 110, info, extent=1.0)
    assert done["pruned"] == 2  # transparent 3 and huge 4 (0.5 > 0.1 x extent)
    np.testing.assert_allclose(params["means"].detach().numpy(), _model().means[[0, 1, 2]])


def test_screen_size_pruning_after_first_reset():
    strategy = DensifyStrategy(start=0, stop=1000, interval=10, reset_interval=100)
    params, optimizer, state, info = _setup(strategy)
    state["grad2d"].zero_()
    state["radii"][2] = 0.5  # covered half the image width
    strategy.step_post_backward(params, optimizer, state, 110, info, extent=100.0)
    np.testing.assert_allclose(params["means"].detach().numpy(), _model().means[[0, 1, 4]])


def test_far_field_gaussians_escape_the_size_rules_and_go_when_unseen():
    strategy = DensifyStrategy(start=0, stop=1000, interval=10, reset_interval=100, far_stale_steps=30)
    params, optimizer, state, info = _setup(strategy)
    state["grad2d"].zero_()
    state["far"][:] = torch.tensor([False, False, False, False, True])  # 4 is huge, but far field
    info["contrib"] = torch.tensor([0, 0, 0, 0, 7], dtype=torch.int32)
    done = strategy.step_post_backward(params, optimizer, state, 110, info, extent=1.0)
    assert done["pruned"] == 1  # only the transparent 3
    np.testing.assert_allclose(params["means"].detach().numpy(), _model().means[[0, 1, 2, 4]])
    assert state["far"].tolist() == [False, False, False, True] and state["last_blended"][3] == 110
    info.update(contrib=torch.zeros(4, dtype=torch.int32), means2d=torch.zeros(4, 2),
                radii=torch.zeros(4, dtype=torch.int32))
    strategy.step_post_backward(params, optimizer, state, 130, info, extent=1.0)
    assert params["means"].shape[0] == 4  # blended 20 steps ago: kept
    strategy.step_post_backward(params, optimizer, state, 150, info, extent=1.0)
    assert params["means"].shape[0] == 3 and not state["far"].any()  # 40 steps unseen: gone


def test_gaussian_cap_grows_highest_gradient_first():
    strategy = DensifyStrategy(start=0, stop=1000, interval=10, reset_interval=100, max_gaussians=6)
    params, optimizer, state, info = _setup(strategy)
    state["grad2d"][1] = 9e-3  # the large one has the higher gradient
    done = strategy.step_post_backward(params, optimizer, state, 10, info, extent=1.0)
    assert (done["cloned"], done["split"]) == (0, 1)


def test_gradient_statistics_in_ndc_units():
    strategy = DensifyStrategy(start=0, stop=1000, interval=10, reset_interval=100)
    params, optimizer, state, info = _setup(strategy)
    state.update(strategy.initialize_state(5))
    means2d = torch.zeros(5, 2, requires_grad=True)
    (means2d * torch.tensor([[1e-5, 0.0]] * 5)).sum().backward()
    info.update(means2d=means2d, radii=torch.tensor([3, 0, 3, 3, 40], dtype=torch.int32))
    strategy.step_post_backward(params, optimizer, state, 3, info, extent=1.0)
    torch.testing.assert_close(state["grad2d"], torch.tensor([1e-5 * 32, 0, 1e-5 * 32, 1e-5 * 32, 1e-5 * 32]))
    torch.testing.assert_close(state["count"], torch.tensor([1.0, 0, 1, 1, 1]))
    torch.testing.assert_close(state["radii"][4], torch.tensor(40 / 64))


def test_opacity_reset():
    strategy = DensifyStrategy(start=0, stop=1000, interval=7, reset_interval=50)
    params, optimizer, state, info = _setup(strategy)
    done = strategy.step_post_backward(params, optimizer, state, 50, info, extent=1.0)
    assert done["reset"] == 1
    op = torch.sigmoid(params["opacities"].detach())
    assert float(op.max()) == pytest.approx(0.01, rel=1e-4)
    assert float(op[3]) == pytest.approx(0.001, rel=1e-3)  # already below: unchanged
    assert torch.all(optimizer.state[params["opacities"]]["exp_avg"] == 0)


def test_no_densification_after_stop():
    strategy = DensifyStrategy(start=0, stop=20, interval=10, reset_interval=30)
    params, optimizer, state, info = _setup(strategy)
    done = strategy.step_post_backward(params, optimizer, state, 30, info, extent=1.0)
    assert done == {"cloned": 0, "split": 0, "pruned": 0, "reset": 0}
    assert params["means"].shape[0] == 5


def test_schedule_scales_with_budget():
    c = BuildConfig(iterations=3000).resolved()
    assert (c.densify_start, c.densify_stop, c.densify_interval, c.opacity_reset_interval) == (50, 1500, 25, 1000)
    c = BuildConfig(iterations=30000, densify_interval=100, opacity_reset_interval=3000).resolved()
    assert (c.densify_start, c.densify_stop, c.densify_interval, c.opacity_reset_interval) == (500, 15000, 100, 3000)
    s = DensifyStrategy.from_config(BuildConfig(iterations=3000).resolved(train_pixels=8_000_000))
    assert s.max_gaussians == 100_000
    assert (s.start, s.stop, s.interval, s.reset_interval) == (50, 1500, 25, 1000)


def test_position_learning_rate_decays_log_linearly():
    c = BuildConfig(iterations=1000)
    assert means_lr(0, c, 2.0) == pytest.approx(3.2e-4)
    assert means_lr(1000, c, 2.0) == pytest.approx(3.2e-6)
    assert means_lr(500, c, 2.0) == pytest.approx(math.sqrt(3.2e-4 * 3.2e-6))


def test_optimizer_has_3dgs_rates():
    c = BuildConfig()
    opt = create_optimizer(create_params(_model(), 3), c, extent=2.0)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == {"means": 3.2e-4, "quats": 1e-3, "scales": 5e-3, "opacities": 0.05,
                   "sh0": 2.5e-3, "shN": 2.5e-3 / 20}
    assert opt.defaults["eps"] == 1e-15


def test_bad_settings_are_clear_errors():
    with pytest.raises(CosegError, match="max_sh_degree"):
        BuildConfig(max_sh_degree=4)
    with pytest.raises(CosegError, match="unknown building setting"):
        BuildConfig.from_dict({"iterations": 10, "lr_foo": 1.0})


def test_training_ssim_matches_the_evaluation_ssim():
    from coseg.building.losses import photometric_loss, ssim
    from coseg.metrics import ssim as ssim_eval

    gen = torch.Generator().manual_seed(0)
    a = torch.rand(30, 41, 3, generator=gen)
    b = (a + 0.1 * torch.randn(30, 41, 3, generator=gen)).clamp(0, 1)
    assert float(ssim(a, b)) == pytest.approx(ssim_eval(a.numpy(), b.numpy()), abs=1e-5)
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-6)
    x = b.clone().requires_grad_()
    loss, l1, s = photometric_loss(x, a, 0.8)
    assert loss.item() == pytest.approx(0.8 * (b - a).abs().mean().item() + 0.2 * (1 - s.item()), rel=1e-6)
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
