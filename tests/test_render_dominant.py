"""The dominant-Gaussian map (per pixel the Gaussian with the largest alpha * T).

The CPU kernel is compared with the float64 reference twin, and the pair-based
torch implementation the gsplat backend uses is fed the reference's blended
pairs and must give the same map.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coseg.render import dominant_gaussians, rasterization
from coseg.render._reference import _blend, _project, _rasterization
from tests.test_render_parity import make_scene

GEOMETRY = ("means", "quats", "scales", "opacities")


def _reference_weights(scene, width, height):
    """(order [M], weights [M, H*W], blended [M, H*W]) of the float64 reference."""
    args = [scene[k].double() for k in GEOMETRY]
    proj = _project(args[0], args[1], args[2], scene["viewmat"].double(), scene["K"].double(), width, height, 0.2)
    order, weights, blended, _ = _blend(proj, args[3], width, height)
    return order, weights, blended


def _unambiguous(weights: torch.Tensor) -> np.ndarray:
    """[H*W] bool: pixels whose two largest weights differ by more than float rounding."""
    if weights.shape[0] < 2:
        return np.ones(weights.shape[1], bool)
    top = torch.topk(weights, 2, dim=0).values
    return (top[0] - top[1] > 1e-9 * top[0].clamp_min(1e-30)).numpy()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("width,height,n", [(17, 13, 40), (40, 24, 60), (33, 32, 120)])
def test_cpu_dominant_matches_reference(seed, width, height, n):
    scene = make_scene(seed, width, height, n=n)
    args = [scene[k] for k in (*GEOMETRY, "colors")]
    img, _, meta = rasterization(*args, scene["viewmat"], scene["K"], width, height, backend="cpu",
                                 render_dominant=True)
    _, _, meta_ref = _rasterization(*args, scene["viewmat"], scene["K"], width, height, render_dominant=True)
    ours, ref = meta["dominant"].numpy().ravel(), meta_ref["dominant"].numpy().ravel()
    assert meta["dominant"].shape == (height, width) and meta["dominant"].dtype == torch.int64
    _, weights, _ = _reference_weights(scene, width, height)
    ok = _unambiguous(weights)
    assert ok.mean() > 0.95
    np.testing.assert_array_equal(ours[ok], ref[ok])
    assert (ref >= 0).any()
    # Asking for the map leaves the image untouched.
    img_plain, _, meta_plain = rasterization(*args, scene["viewmat"], scene["K"], width, height, backend="cpu")
    assert torch.equal(img, img_plain) and "dominant" not in meta_plain


def test_dominant_of_opaque_layers_is_the_front_one():
    """Dense, opaque scene: pixels terminate, and the dominant Gaussian is blended there."""
    scene = make_scene(5, 32, 32, n=90, opacity_range=(0.7, 0.99))
    scene["scales"] = scene["scales"] * 3
    args = [scene[k] for k in GEOMETRY]
    dom = dominant_gaussians(*args, scene["viewmat"], scene["K"], 32, 32, backend="cpu")
    order, weights, blended = _reference_weights(scene, 32, 32)
    ok = _unambiguous(weights)
    ref = order[torch.argmax(weights, 0)].numpy()
    np.testing.assert_array_equal(dom.ravel()[ok], ref[ok])
    # Every dominant Gaussian is one that blends into its pixel.
    rank = {int(g): i for i, g in enumerate(order)}
    for p in np.flatnonzero(dom.ravel() >= 0)[::7]:
        assert blended[rank[int(dom.ravel()[p])], p]


def test_batched_dominant_stacks_per_camera():
    a, b = make_scene(0, 20, 16, n=50), make_scene(1, 20, 16, n=50)
    args = [a[k] for k in (*GEOMETRY, "colors")]
    viewmats, Ks = torch.stack([a["viewmat"], b["viewmat"]]), torch.stack([a["K"], b["K"]])
    _, _, meta = rasterization(*args, viewmats, Ks, 20, 16, backend="cpu", render_dominant=True)
    assert meta["dominant"].shape == (2, 16, 20)
    for i, (vm, k) in enumerate(zip(viewmats, Ks)):
        single = dominant_gaussians(*args[:4], vm, k, 20, 16, backend="cpu")
        np.testing.assert_array_equal(meta["dominant"][i].numpy(), single)


def test_empty_scene_has_no_dominant():
    scene = make_scene(0, 12, 10, n=40)
    args = [scene[k][:0] for k in GEOMETRY]
    dom = dominant_gaussians(*args, scene["viewmat"], scene["K"], 12, 10, backend="cpu")
    assert dom.shape == (10, 12) and (dom == -1).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pair_based_dominant_matches_reference(seed):
    """The gsplat backend's path: blended pairs -> alphas from the projection -> dominant map."""
    from coseg.render._gsplat_backend import _dominant

    width, height = 36, 28
    scene = make_scene(seed, width, height, n=80)
    args = [scene[k] for k in (*GEOMETRY, "colors")]
    _, _, meta = rasterization(*args, scene["viewmat"], scene["K"], width, height, backend="cpu")
    order, weights, blended = _reference_weights(scene, width, height)
    rows, pixels = torch.nonzero(blended, as_tuple=True)
    # Shuffled: the pair list need not come in depth order.
    perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    pairs = (order[rows][perm], pixels[perm], torch.zeros(len(rows), dtype=torch.int64))
    gmeta = {"means2d": meta["means2d"].detach()[None].double(), "conics": meta["conics"][None].double(),
             "opacities": scene["opacities"][None].double(), "depths": meta["depths"][None].double()}
    dom = _dominant(pairs, gmeta, 1, width, height)[0].numpy().ravel()
    ref = torch.where(weights.amax(0) > 0, order[torch.argmax(weights, 0)], -1).numpy()
    ok = _unambiguous(weights)
    np.testing.assert_array_equal(dom[ok], ref[ok])
