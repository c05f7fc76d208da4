"""Viewport camera maths and the background depth sorter."""

from pathlib import Path

import numpy as np
import pytest

from coseg.scene import Camera

pytestmark = pytest.mark.gui


def test_snap_reproduces_the_training_camera_exactly():
    from app.viewport.camera import ViewCamera

    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    w2c = np.eye(4)
    w2c[:3, :3] = q
    w2c[:3, 3] = rng.normal(size=3)
    cam = Camera("c", Path("c.png"), 64, 48, 50.0, 52.0, 30.0, 25.0, w2c)
    view = ViewCamera()
    view.snap_to(cam, distance=2.0)
    np.testing.assert_allclose(view.viewmat(), w2c, atol=1e-9)
    assert view.focal(64, 48) == (50.0, 52.0, 30.0, 25.0)
    fx, fy, cx, cy = view.focal(128, 96)  # another viewport size keeps the vertical field of view
    assert fy == pytest.approx(104.0) and (cx, cy) == (64.0, 48.0)
    view.orbit(0.1, 0.0)
    assert view.intrinsics is None


def test_orbit_pan_zoom_frame():
    from app.viewport.camera import ViewCamera

    view = ViewCamera()
    target, dist = view.target.copy(), view.distance
    view.orbit(0.7, 0.3)
    np.testing.assert_allclose(np.linalg.norm(view.position - view.target), dist)
    np.testing.assert_allclose(view.target, target)
    r = view.rotation
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-9)
    assert abs(float(r[:, 0] @ view.up)) < 1e-9  # no roll: the right axis stays horizontal
    view.pan(10.0, 0.0, 100)
    assert np.linalg.norm(view.target - target) > 0
    assert float((view.target - target) @ r[:, 0]) < 0  # dragging right moves the scene right
    view.zoom(0.5)
    assert view.distance == pytest.approx(dist * 0.5)
    view.frame(np.array([1.0, 2.0, 3.0]), 0.5)
    np.testing.assert_allclose(view.target, [1.0, 2.0, 3.0])
    before = view.position.copy()
    view.fly(0.0, 0.0, 1.0)
    np.testing.assert_allclose(view.position - before, view.forward, atol=1e-9)


def test_depth_sorter_thread_delivers_the_newest_order(qtbot):
    from app.viewport.sorter import DepthSorter
    from coseg.sort import depth_order

    sorter = DepthSorter()
    try:
        means = np.random.default_rng(0).normal(size=(5000, 3)).astype(np.float32)
        views = []
        for k in range(3):
            v = np.eye(4)
            v[:3, 3] = [0.0, 0.0, 5.0 + k]
            views.append(v)
        got = []
        sorter.ready.connect(lambda gen, order, view: got.append((gen, order, view)))
        for k, v in enumerate(views):
            sorter.request(7, means, v)
        qtbot.waitUntil(lambda: bool(got) and np.array_equal(got[-1][2], views[-1]), timeout=10_000)
        gen, order, view = got[-1]
        assert gen == 7 and np.array_equal(order, depth_order(means, views[-1]))
        assert len(got) <= 3
    finally:
        sorter.shutdown()
