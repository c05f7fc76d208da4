"""Fused building ops against their plain-PyTorch twins: SSIM (numba) and Adam (numba)."""

from __future__ import annotations

import pytest
import torch

from coseg.building.fused_adam import FusedAdam
from coseg.building.losses import _ssim, ssim


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _pair(h, w, c, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(h, w, c, generator=gen, dtype=dtype)
    b = (a + 0.15 * torch.randn(h, w, c, generator=gen, dtype=dtype)).clamp(0, 1)
    return a, b


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(30, 41, 3), (7, 5, 3), (16, 16, 1), (12, 20, 4)])
@pytest.mark.parametrize("masked", [False, True])
def test_fused_ssim_matches_the_torch_twin_forward_and_backward(dtype, shape, masked):
    a, b = _pair(*shape, dtype)
    mask = None
    if masked:
        mask = (torch.rand(shape[:2], generator=torch.Generator().manual_seed(5)) > 0.3).to(dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    x1 = b.clone().requires_grad_()
    x2 = b.clone().requires_grad_()
    s1, s2 = ssim(x1, a, mask), _ssim(x2, a, mask)
    assert s1.dtype == dtype
    torch.testing.assert_close(s1, s2, **tol)
    upstream = torch.randn((), generator=torch.Generator().manual_seed(1), dtype=dtype)
    g1, = torch.autograd.grad(s1, x1, upstream)
    g2, = torch.autograd.grad(s2, x2, upstream)
    torch.testing.assert_close(g1, g2, **tol)


def test_fused_ssim_gradient_is_the_numerical_derivative():
    a, b = _pair(9, 11, 3, torch.float64, seed=2)
    x = b.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: ssim(t, a), (x,), eps=1e-6, atol=1e-7)


def test_fused_ssim_of_identical_images_is_one_and_refuses_a_reference_needing_a_gradient():
    a, _ = _pair(20, 24, 3, torch.float32)
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="reference"):
        ssim(a, a.clone().requires_grad_())


def _adam_params():
    gen = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(300, 3, generator=gen)),
            torch.nn.Parameter(torch.randn(300, 1, 15, generator=gen))]


def _adam_steps(opt, params, steps, first=0):
    """Steps first..first+steps-1 with seeded gradients (parameter 1 has none at step 2)."""
    for step in range(first, first + steps):
        grads = torch.Generator().manual_seed(100 + step)
        for i, p in enumerate(params):
            p.grad = None if (step == 2 and i == 1) else torch.randn(p.shape, generator=grads)
        opt.step()


def _groups(params):
    return [{"params": [params[0]], "lr": 1e-2}, {"params": [params[1]], "lr": 3e-3}]


def test_fused_adam_matches_torch_adam_and_shares_its_state_layout():
    fused, plain = _adam_params(), _adam_params()
    f_opt = FusedAdam(_groups(fused), eps=1e-15, betas=(0.9, 0.999))
    t_opt = torch.optim.Adam(_groups(plain), eps=1e-15, betas=(0.9, 0.999), foreach=False)
    _adam_steps(f_opt, fused, 6)
    _adam_steps(t_opt, plain, 6)
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        sa, sb = f_opt.state[a], t_opt.state[b]
        assert set(sa) == set(sb) == {"step", "exp_avg", "exp_avg_sq"}
        assert float(sa["step"]) == float(sb["step"])
        torch.testing.assert_close(sa["exp_avg"], sb["exp_avg"], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(sa["exp_avg_sq"], sb["exp_avg_sq"], rtol=1e-5, atol=1e-9)


def test_fused_adam_continues_a_torch_adam_checkpoint():
    resumed = _adam_params()
    t_opt = torch.optim.Adam(_groups(resumed), eps=1e-15, foreach=False)
    _adam_steps(t_opt, resumed, 3)
    f_opt = FusedAdam(_groups(resumed), eps=1e-15)
    f_opt.load_state_dict(t_opt.state_dict())
    _adam_steps(f_opt, resumed, 3, first=3)
    straight = _adam_params()
    s_opt = torch.optim.Adam(_groups(straight), eps=1e-15, foreach=False)
    _adam_steps(s_opt, straight, 6)
    for a, b in zip(resumed, straight):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_adam_rejects_bad_settings():
    with pytest.raises(ValueError, match="FusedAdam"):
        FusedAdam([torch.nn.Parameter(torch.zeros(2))], lr=-1.0)


def test_fused_adam_skipping_inactive_columns_changes_nothing():
    """Columns without gradient or moments (SH bands above the degree) may be skipped exactly."""
    def run(active):
        gen = torch.Generator().manual_seed(0)
        p = torch.nn.Parameter(torch.randn(50, 15, 3, generator=gen))
        opt = FusedAdam([{"params": [p], "lr": 1e-2, **({} if active is None else {"active_dim1": active})}])
        for step in range(4):
            grad = torch.randn(p.shape, generator=gen)
            grad[:, 3:] = 0.0  # only bands 1..3 receive a gradient
            p.grad = grad
            opt.step()
        return p.detach(), opt.state[p]["exp_avg"]

    full, full_m = run(None)
    skip, skip_m = run(3)
    torch.testing.assert_close(skip, full, rtol=0, atol=0)
    torch.testing.assert_close(skip_m, full_m, rtol=0, atol=0)
