"""The transform gizmo and the selection tools through the viewport's tool path (pointer events)."""

import numpy as np
import pytest

from app.viewport import gizmo
from app.viewport.canvas import PointerEvent
from coseg.gaussians import Gaussians

pytestmark = pytest.mark.gui


def _model(n=200) -> Gaussians:
    rng = np.random.default_rng(5)
    g = Gaussians.from_points(rng.normal(0, 0.3, (n, 3)), rng.uniform(0.2, 1, (n, 3)), scale=0.05,
                              opacity=0.9, sh_degree=1)
    g.sh_rest = rng.normal(0, 0.1, g.sh_rest.shape).astype(np.float32)
    g.segments = (np.arange(n) % 2).astype(np.int32)
    return g


@pytest.fixture
def win(make_main_window):
    from app.loading import LoadedModel
    from pathlib import Path

    w = make_main_window(size=(400, 300))
    w.set_loaded(LoadedModel(Path("gizmo.ply"), "ply", _model()))
    cam = w.canvas.camera
    cam.rotation = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    cam.frame(np.zeros(3), 1.0)
    return w


def _drag(win, start, end, steps=5, mods=frozenset()):
    tools = win.tools
    assert tools.press(PointerEvent(tuple(start), 1, mods))
    for t in np.linspace(0, 1, steps + 1)[1:]:
        tools.drag(PointerEvent(tuple(np.asarray(start) + t * (np.asarray(end) - start)), 1, mods))
    tools.release(PointerEvent(tuple(end), 1, mods))


def test_move_handle_moves_along_its_axis_in_one_step(win):
    g0 = win.doc.gaussians.copy()
    win.doc.select([1])
    rows = win.doc.editable_rows()
    win.tools.set_tool("move")
    view, pivot = win.tools._view(), win.tools.pivot()
    tip = gizmo.handles("translate", view, pivot)["x"][-1]
    _drag(win, tip - [2, 0], tip + [38, 0])
    g = win.doc.gaussians
    delta = g.means[rows] - g0.means[rows]
    np.testing.assert_allclose(delta[:, 1:], 0, atol=1e-6)
    expected = 40 * gizmo.world_length(view, pivot) / float(np.linalg.norm(tip - view.project(pivot[None])[0]))
    np.testing.assert_allclose(delta[:, 0], expected, rtol=1e-3)
    assert [op["op"] for op in win.doc.edits.ops] == ["transform"]
    win.doc.undo()
    assert win.doc.gaussians.means.tobytes() == g0.means.tobytes()


def test_rotate_ring_turns_about_the_pivot_with_sh(win):
    from coseg.edit.ops import quat_to_matrix
    from coseg.edit.sh_rotation import rotate_sh_rest

    g0 = win.doc.gaussians.copy()
    win.doc.select([0])
    rows = win.doc.editable_rows()
    win.tools.set_tool("rotate")
    view, pivot = win.tools._view(), win.tools.pivot()
    ring = gizmo.handles("rotate", view, pivot)["z"]           # z points away from the camera: a full circle
    c = view.project(pivot[None])[0]
    a, b = ring[8], ring[14]                                   # from 45 to 78.75 degrees (off the other rings)
    assert gizmo.hit("rotate", view, pivot, a) == "z"
    _drag(win, a, b, steps=8)
    (op,) = win.doc.edits.ops
    R = quat_to_matrix(np.asarray(op["rotation"]))
    angle = np.degrees(np.arctan2(R[1, 0], R[0, 0]))
    sweep = np.degrees(np.arctan2(b[1] - c[1], b[0] - c[0]) - np.arctan2(a[1] - c[1], a[0] - c[0]))
    assert angle == pytest.approx(sweep, abs=1e-6) and abs(angle) > 30
    g = win.doc.gaussians
    np.testing.assert_allclose(g.means[rows], (g0.means[rows] - pivot) @ R.T + pivot, atol=1e-5)
    np.testing.assert_allclose(g.sh_rest[rows], rotate_sh_rest(g0.sh_rest[rows], R), atol=1e-5)


def test_scale_handle_and_typed_scale(win):
    g0 = win.doc.gaussians.copy()
    win.doc.select([1])
    rows = win.doc.editable_rows()
    win.tools.set_tool("scale")
    view, pivot = win.tools._view(), win.tools.pivot()
    tip = gizmo.handles("scale", view, pivot)["x"][-1]
    c = view.project(pivot[None])[0]
    _drag(win, tip, c + 2 * (tip - c))                          # twice as far from the pivot: x2
    g = win.doc.gaussians
    np.testing.assert_allclose(g.scales[rows], 2 * g0.scales[rows], rtol=1e-4)
    np.testing.assert_allclose(g.means[rows] - pivot, 2 * (g0.means[rows] - pivot), atol=1e-5)
    win.properties_panel.factor.setValue(0.5)
    win.properties_panel.apply_scale()
    np.testing.assert_allclose(win.doc.gaussians.scales[rows], g0.scales[rows], rtol=1e-4)
    assert len(win.doc.edits.ops) == 2


def test_rect_brush_and_modifiers_select_splats(win):
    from coseg.edit import selection as sel

    w, h = win.canvas.size
    win.tools.set_tool("rect")
    _drag(win, (0, 0), (w / 2, h))
    view = win.tools._view()
    xy = view.project(win.doc.gaussians.means.astype(np.float64))
    z = np.full(len(xy), 5.0)
    left = sel.in_rect(xy, z, 0, 0, w / 2, h)
    assert 50 < left.sum() < 150
    np.testing.assert_array_equal(win.doc.state.selection, left)
    win.tools.set_tool("brush")
    win.tools.brush_radius = 30
    _drag(win, (w * 0.75, h / 2), (w * 0.75, h / 2 + 1), mods=frozenset({"Shift"}))
    near = np.hypot(xy[:, 0] - w * 0.75, xy[:, 1] - h / 2) < 25
    assert win.doc.state.selection[near].all() and win.doc.state.selection[left].all()
    win.tools.set_tool("polygon")
    tri = [(0, 0), (w, 0), (0, h)]
    for p in tri:
        win.tools.press(PointerEvent(p, 1, frozenset({"Control"})))
        win.tools.release(PointerEvent(p, 1, frozenset({"Control"})))
    win.tools.key("Enter")
    inside = sel.in_polygon(xy, z, np.array(tri, float), (w, h))
    assert inside.any()
    assert not win.doc.state.selection[inside].any()           # Ctrl removed the triangle
