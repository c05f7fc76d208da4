"""Numba SH colours against the plain-PyTorch twin (`_sh.eval_sh_colors`): forward and backward."""

from __future__ import annotations

import pytest
import torch

from coseg.render._cpu_sh import sh_colors
from coseg.render._sh import eval_sh_colors


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _inputs(n, k, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=dtype) * 2
    sh0 = torch.randn(n, 1, 3, generator=g, dtype=dtype)  # large enough that some colours clamp
    rest = 0.5 * torch.randn(n, k, 3, generator=g, dtype=dtype)
    center = torch.tensor([0.3, -0.2, 0.5], dtype=dtype)
    return means, sh0, rest, center


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_colors_match_the_torch_twin(dtype, degree):
    means, sh0, rest, center = _inputs(257, 15, dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    leaves_a = [t.clone().requires_grad_() for t in (sh0, rest, means)]
    leaves_b = [t.clone().requires_grad_() for t in (sh0, rest, means)]
    fast = sh_colors(degree, *leaves_a[:2], leaves_a[2], center)
    twin = eval_sh_colors(degree, torch.cat(leaves_b[:2], dim=1), leaves_b[2], center)
    assert fast.dtype == dtype and (twin == 0).any()  # the clamp is exercised
    torch.testing.assert_close(fast, twin, **tol)
    upstream = torch.randn(fast.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    grads_a = torch.autograd.grad(fast, leaves_a, upstream, allow_unused=True)
    grads_b = torch.autograd.grad(twin, leaves_b, upstream, allow_unused=True)
    for name, a, b in zip(("sh0", "rest", "means"), grads_a, grads_b):
        b = torch.zeros_like(a) if b is None else b  # degree 0: the twin's means get no gradient
        torch.testing.assert_close(a, b, **tol, msg=lambda m, name=name: f"{name}: {m}")


def test_sh_colors_with_fewer_stored_bands():
    means, sh0, rest, center = _inputs(40, 3, torch.float64)
    torch.testing.assert_close(sh_colors(1, sh0, rest, means, center),
                               eval_sh_colors(1, torch.cat([sh0, rest], 1), means, center))
    with pytest.raises(ValueError, match="higher bands"):
        sh_colors(2, sh0, rest, means, center)
