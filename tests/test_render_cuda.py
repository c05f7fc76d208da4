"""CUDA backends (gsplat, inria) against the CPU backend; GPU tests skip cleanly without CUDA.

The conversion helpers and error paths that need no GPU run everywhere.
"""

from __future__ import annotations

import pytest
import torch

from coseg.render import rasterization
from coseg.render import _gsplat_backend, _inria_backend
from tests.test_render_parity import GROUPS, make_scene, relative_error

BACKENDS = {"gsplat": _gsplat_backend, "inria": _inria_backend}


def _needs(name: str):
    return pytest.mark.skipif(not BACKENDS[name].available(), reason=f"{name} or CUDA not available")


def _render(backend, scene, w, h, sh_degree=None, requires_grad=False):
    params = {k: scene[k].clone().requires_grad_(requires_grad) for k in GROUPS}
    bg = torch.linspace(0, 1, 3)
    out = rasterization(*params.values(), scene["viewmat"], scene["K"], w, h, sh_degree=sh_degree,
                        backgrounds=bg, render_depth=True, backend=backend)
    return params, out


def _close_on_most_pixels(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-3, share: float = 0.01):
    """Tile-rule details differ slightly between rasterisers: allow `share` of pixels off by > atol."""
    err = (a.detach().cpu().double() - b.detach().cpu().double()).abs().amax(-1)
    assert float((err > atol).double().mean()) <= share, f"max error {float(err.max()):.3g}"
    assert float(err.mean()) <= atol / 10


@pytest.mark.cuda
@pytest.mark.parametrize("name", [pytest.param(n, marks=_needs(n)) for n in BACKENDS])
@pytest.mark.parametrize("sh_degree", [None, 3])
def test_cuda_backend_matches_cpu(name, sh_degree):
    w, h = 64, 48
    scene = make_scene(7, w, h, 3, sh_degree, n=200)
    params, (img, alpha, meta) = _render(name, scene, w, h, sh_degree, requires_grad=True)
    params_cpu, (img_c, alpha_c, meta_c) = _render("cpu", scene, w, h, sh_degree, requires_grad=True)
    assert img.shape == img_c.shape and alpha.shape == alpha_c.shape and img.device == img_c.device
    _close_on_most_pixels(img, img_c)
    _close_on_most_pixels(alpha, alpha_c)
    assert float((meta["visible"].cpu() != meta_c["visible"]).double().mean()) <= 0.02
    vis = meta_c["visible"] & meta["visible"].cpu()
    torch.testing.assert_close(meta["means2d"].detach().cpu()[vis], meta_c["means2d"].detach()[vis],
                               atol=1e-3, rtol=1e-4)
    meta["means2d"].retain_grad()
    meta_c["means2d"].retain_grad()
    gen = torch.Generator().manual_seed(1)
    up = torch.randn(img_c.shape, generator=gen)
    (img * up.to(img.device)).sum().backward()
    (img_c * up).sum().backward()
    for k in GROUPS:
        err = relative_error(params[k].grad.cpu(), params_cpu[k].grad)
        assert err <= 2e-2, f"{name}: gradient of {k} differs by {err:.3g}"
    assert relative_error(meta["means2d"].grad.cpu(), meta_c["means2d"].grad) <= 2e-2


@pytest.mark.cuda
@pytest.mark.parametrize("name", [pytest.param(n, marks=_needs(n)) for n in BACKENDS])
def test_cuda_backend_batched_and_depth(name):
    w, h = 40, 32
    scene = make_scene(3, w, h, 3, n=100)
    vms = torch.stack([scene["viewmat"]] * 2)
    ks = torch.stack([scene["K"]] * 2)
    args = [scene[k] for k in GROUPS]
    img, alpha, meta = rasterization(*args, vms, ks, w, h, render_depth=True, backend=name)
    img_c, alpha_c, meta_c = rasterization(*args, vms, ks, w, h, render_depth=True, backend="cpu")
    assert img.shape == (2, h, w, 3) and meta["radii"].shape == meta_c["radii"].shape
    _close_on_most_pixels(img.flatten(0, 1), img_c.flatten(0, 1))
    _close_on_most_pixels(meta["depth"].flatten(0, 1), meta_c["depth"].flatten(0, 1), atol=1e-2)


@pytest.mark.cuda
@pytest.mark.skipif(not _gsplat_backend.available(), reason="gsplat or CUDA not available")
def test_gsplat_contrib_and_many_channels():
    w, h = 48, 32
    scene = make_scene(5, w, h, 64, n=150)
    args = [scene[k] for k in GROUPS]
    img, _, meta = rasterization(*args, scene["viewmat"], scene["K"], w, h, backend="gsplat")
    img_c, _, meta_c = rasterization(*args, scene["viewmat"], scene["K"], w, h, backend="cpu")
    _close_on_most_pixels(img, img_c)
    diff = (meta["contrib"].cpu().long() - meta_c["contrib"].long()).abs()
    assert int(diff.sum()) <= 0.01 * int(meta_c["contrib"].sum()) + 5


def test_missing_cuda_backend_is_a_clear_error():
    scene = make_scene(1, 8, 8)
    for name, module in BACKENDS.items():
        if module.available():
            continue
        with pytest.raises(ValueError, match=name):
            rasterization(*[scene[k] for k in GROUPS], scene["viewmat"], scene["K"], 8, 8, backend=name)


def test_inria_refuses_other_channel_counts():
    scene = make_scene(1, 8, 8, channels=5)
    with pytest.raises(ValueError, match="NUM_CHANNELS=3"):
        _inria_backend.rasterize(*[scene[k] for k in GROUPS], scene["viewmat"], scene["K"], 8, 8)


def test_inria_projection_matrix_maps_to_our_pixel_centres():
    """3DGS pixel coordinate ((ndc + 1) W - 1) / 2 plus 0.5 must equal fx x / z + cx."""
    K = torch.tensor([[100.0, 0, 61.5], [0, 90.0, 40.25], [0, 0, 1]], dtype=torch.float64)
    P = _inria_backend.projection_matrix(K, 128, 96)
    points = torch.tensor([[0.3, -0.2, 2.0], [-1.0, 0.5, 4.0], [0.0, 0.0, 0.5]], dtype=torch.float64)
    clip = torch.cat([points, torch.ones(3, 1, dtype=torch.float64)], 1) @ P.T
    ndc = clip[:, :2] / clip[:, 3:]
    ours = points[:, :2] / points[:, 2:] * torch.stack([K[0, 0], K[1, 1]]) + torch.stack([K[0, 2], K[1, 2]])
    theirs = ((ndc + 1) * torch.tensor([128.0, 96.0], dtype=torch.float64) - 1) / 2 + 0.5
    torch.testing.assert_close(theirs, ours)


def test_gsplat_single_camera_means2d_leaf_receives_the_gradient():
    """The [N, 2] stand-in for gsplat's [1, N, 2] means2d gets that node's gradient on backward."""
    x = torch.randn(6, 2, requires_grad=True)
    node = (3 * x)[None]
    leaf = _gsplat_backend._single_camera_means2d(node)
    leaf.retain_grad()
    for _ in range(2):
        (node ** 2).sum().backward(retain_graph=True)
    torch.testing.assert_close(leaf.grad, 2 * 2 * node[0].detach())
    assert leaf.is_leaf and leaf.shape == (6, 2)


@pytest.mark.cuda
@pytest.mark.parametrize("name", [pytest.param(n, marks=_needs(n)) for n in BACKENDS])
def test_cuda_backend_dominant_matches_cpu(name):
    """The dominant-Gaussian map agrees with the CPU kernel's on all but boundary pixels."""
    w, h = 48, 40
    scene = make_scene(9, w, h, 3, n=150)
    args = [scene[k] for k in GROUPS]
    vms, ks = torch.stack([scene["viewmat"]] * 2), torch.stack([scene["K"]] * 2)
    _, _, meta = rasterization(*args, vms, ks, w, h, render_dominant=True, backend=name)
    _, _, meta_c = rasterization(*args, vms, ks, w, h, render_dominant=True, backend="cpu")
    assert meta["dominant"].shape == (2, h, w) and meta["dominant"].dtype == torch.int64
    assert float((meta["dominant"].cpu() != meta_c["dominant"]).double().mean()) <= 0.02
