"""`blend_weights`: a view's rendering as a sparse matrix, against the reference and the rasteriser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coseg.render import rasterization
from coseg.render.weights import _blend_weights, blend_weights
from tests.test_render_parity import SEEDS, make_scene


def _dense(indptr, indices, weights, n):
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    out = np.zeros((len(indptr) - 1, n))
    np.add.at(out, (rows, indices), weights)
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_blend_weights_match_the_reference_and_render_like_the_rasteriser(seed):
    w, h = 40, 24
    scene = make_scene(seed, w, h, n=60, channels=5)
    geometry = [scene[k] for k in ("means", "quats", "scales", "opacities")]
    indptr, indices, weights = blend_weights(*geometry, scene["viewmat"], scene["K"], w, h)
    assert indptr.shape == (w * h + 1,) and indices.dtype == np.int32 and weights.dtype == np.float32
    assert indptr[-1] > 0 and np.all(np.diff(indptr) >= 0)
    dense = _dense(indptr, indices, weights, 60)
    ref = _blend_weights(*geometry, scene["viewmat"], scene["K"], w, h).numpy()
    np.testing.assert_allclose(dense, ref, atol=2e-5)
    assert np.all(dense.sum(1) <= 1 + 1e-5)  # one minus the final transmittance
    image, _, _ = rasterization(*geometry, scene["colors"], scene["viewmat"], scene["K"], w, h, backend="cpu")
    np.testing.assert_allclose(dense @ scene["colors"].double().numpy(), image.reshape(-1, 5).numpy(), atol=2e-5)
    # every pixel lists a Gaussian at most once
    for p in range(w * h):
        row = indices[indptr[p]:indptr[p + 1]]
        assert len(np.unique(row)) == len(row)


def test_blend_weights_of_an_empty_view_are_empty():
    scene = make_scene(0, 16, 8, n=20)
    means = scene["means"] + torch.tensor([0.0, 0.0, -100.0])  # everything behind the camera
    indptr, indices, weights = blend_weights(means, scene["quats"], scene["scales"], scene["opacities"],
                                             scene["viewmat"], scene["K"], 16, 8)
    assert indptr[-1] == 0 and len(indices) == 0 and len(weights) == 0
