"""Splat-level selection geometry (GUI-free): screen shapes, volumes, filters, modifiers, grow/shrink."""

import numpy as np
import pytest

from coseg.edit import selection as sel


def _grid():
    """A 5 x 5 grid of centres 2 units in front of an identity camera, 1 unit apart."""
    xs, ys = np.meshgrid(np.arange(-2, 3), np.arange(-2, 3))
    means = np.stack([xs.ravel(), ys.ravel(), np.full(25, 2.0)], 1).astype(np.float32)
    view = np.eye(4)
    focal = (100.0, 100.0, 320.0, 240.0)   # 1 unit at depth 2 = 50 px
    return means, view, focal


def test_projection_and_rectangle():
    means, view, focal = _grid()
    xy, z = sel.project(means, view, focal)
    np.testing.assert_allclose(xy[12], [320, 240])
    np.testing.assert_allclose(xy[13], [370, 240])
    picked = sel.in_rect(xy, z, 300, 200, 380, 260)  # around the centre and its right neighbour
    assert np.flatnonzero(picked).tolist() == [12, 13]
    behind = means.copy()
    behind[:, 2] = -2.0
    xy_b, z_b = sel.project(behind, view, focal)
    assert not sel.in_rect(xy_b, z_b, -1e9, -1e9, 1e9, 1e9).any()


def test_polygon_and_brush():
    means, view, focal = _grid()
    xy, z = sel.project(means, view, focal)
    triangle = [(260, 180), (400, 180), (260, 320)]  # covers (-1,-1),(0,-1),(1,-1),(-1,0),(0,0),(-1,1)
    assert set(np.flatnonzero(sel.in_polygon(xy, z, triangle, (640, 480)))) == {6, 7, 8, 11, 12, 16}
    stroke = sel.in_stroke(xy, z, [(320, 140), (320, 340)], 5, (640, 480))
    assert np.flatnonzero(stroke).tolist() == [2, 7, 12, 17, 22]   # the middle column


def test_volumes_filters_and_modifiers():
    means, _, _ = _grid()
    sphere = sel.in_sphere(means, (0, 0, 2), 1.01)
    assert np.flatnonzero(sphere).tolist() == [7, 11, 12, 13, 17]
    box = sel.in_box(means, (1.5, 1.5, 2), (0.6, 0.6, 0.1))
    assert np.flatnonzero(box).tolist() == [18, 19, 23, 24]
    op = np.linspace(0, 1, 25)
    assert np.flatnonzero(sel.by_opacity(op, 0.9, 1.0)).tolist() == [22, 23, 24]
    ls = np.log(np.tile(np.linspace(0.01, 0.25, 25)[:, None], (1, 3)))
    assert np.flatnonzero(sel.by_size(ls, 0.0, 0.015)).tolist() == [0]
    a, b = np.zeros(25, bool), np.zeros(25, bool)
    a[:5], b[3:8] = True, True
    assert np.flatnonzero(sel.combine(a, b, "add")).tolist() == list(range(8))
    assert np.flatnonzero(sel.combine(a, b, "remove")).tolist() == [0, 1, 2]
    assert np.flatnonzero(sel.combine(a, b, "replace")).tolist() == [3, 4, 5, 6, 7]
    only = np.ones(25, bool)
    only[5] = False
    assert np.flatnonzero(sel.combine(a, b, "replace", only)).tolist() == [3, 4, 6, 7]


def test_grow_and_shrink_by_neighbours():
    means, _, _ = _grid()
    centre = np.zeros(25, bool)
    centre[12] = True
    grown = sel.grow(means, centre, 1.01)
    assert np.flatnonzero(grown).tolist() == [7, 11, 12, 13, 17]
    assert np.flatnonzero(sel.shrink(means, grown, 1.01)).tolist() == [12]
    assert not sel.grow(means, np.zeros(25, bool), 1.0).any()


def test_row_stats_are_the_mean_min_max_of_the_rows():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(500, 3)).astype(np.float32)
    rows = np.sort(rng.choice(500, 120, replace=False))
    mean, lo, hi = sel.row_stats(values, rows)
    np.testing.assert_allclose(mean, values[rows].astype(np.float64).mean(0), rtol=0, atol=1e-12)
    assert lo.tolist() == values[rows].min(0).tolist() and hi.tolist() == values[rows].max(0).tolist()
    assert sel.row_stats(values[:, None, :], rows)[0].shape == (3,)  # [N, 1, 3] rows flattened
    with pytest.raises(ValueError, match="no rows"):
        sel.row_stats(values, np.zeros(0, np.int64))
