"""coseg.sort: the viewport's depth order and covariances (GUI-free)."""

import numpy as np

from coseg.gaussians import Gaussians
from coseg.sort import covariances_upper, depth_order, view_depths


def _view(rng):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    m = np.eye(4)
    m[:3, :3] = q * np.sign(np.linalg.det(q))
    m[:3, 3] = rng.normal(size=3)
    return m


def test_depth_order_is_a_back_to_front_permutation():
    rng = np.random.default_rng(3)
    means = rng.normal(size=(50_000, 3)).astype(np.float32)
    view = _view(rng)
    order = depth_order(means, view)
    assert order.dtype == np.uint32 and order.dtype.isbuiltin
    assert np.array_equal(np.sort(order), np.arange(len(means)))
    depth = view_depths(means, view)
    span = depth.max() - depth.min()
    # Sorted up to the 16-bit key resolution.
    assert np.all(np.diff(depth[order]) <= span / 65535 * 1.01)


def test_depth_order_stable_ties_and_edge_cases():
    means = np.zeros((5, 3), np.float32)
    assert np.array_equal(depth_order(means, np.eye(4)), np.arange(5))
    assert depth_order(np.zeros((0, 3), np.float32), np.eye(4)).shape == (0,)
    means = np.array([[0, 0, 1], [0, 0, 3], [0, 0, 2]], np.float32)
    assert list(depth_order(means, np.eye(4))) == [1, 2, 0]


def test_covariances_match_rotation_and_scale():
    rng = np.random.default_rng(0)
    g = Gaussians.from_points(rng.normal(size=(4, 3)), rng.uniform(size=(4, 3)))
    g.log_scales = np.log(np.array([[1, 2, 3]] * 4, np.float32))
    g.quats = rng.normal(size=(4, 4)).astype(np.float32)
    cov = covariances_upper(g)
    q = g.quats / np.linalg.norm(g.quats, axis=1, keepdims=True)
    for i in range(4):
        w, x, y, z = q[i]
        r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                      [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                      [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
        full = r @ np.diag([1, 4, 9]) @ r.T
        np.testing.assert_allclose(cov[i], full[np.triu_indices(3)], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.linalg.eigvalsh(full), [1, 4, 9], rtol=1e-5)


def test_covariance_kernel_matches_its_numpy_twin():
    from coseg.sort import _covariances_upper, covariances_upper_of

    rng = np.random.default_rng(1)
    q = rng.normal(size=(5000, 4)).astype(np.float32)
    ls = rng.normal(-3, 1, size=(5000, 3)).astype(np.float32)
    np.testing.assert_allclose(covariances_upper_of(q, ls), _covariances_upper(q, ls), rtol=1e-5, atol=1e-12)
    assert covariances_upper_of(q[:0], ls[:0]).shape == (0, 6)
