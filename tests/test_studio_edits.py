"""Studio edits through the UI path: properties panel, viewport drag, duplicate, recolour, hide/isolate."""

import numpy as np
import pytest

from coseg.edit import ops
from coseg.gaussians import Gaussians

pytestmark = pytest.mark.gui


def _model(n=90, segments=(0, 1, 2)) -> Gaussians:
    rng = np.random.default_rng(0)
    g = Gaussians.from_points(rng.uniform(-1, 1, (n, 3)), rng.uniform(0.2, 1, (n, 3)), scale=0.15, opacity=0.9)
    g.segments = np.array([segments[i % len(segments)] for i in range(n)], np.int32)
    g.sh_rest = rng.normal(0, 0.1, (n, 15, 3)).astype(np.float32)
    return g


@pytest.fixture
def opened(make_main_window, tmp_path):
    from coseg.io.ply import write_gaussians_ply

    g = _model()
    src = tmp_path / "scene.ply"
    write_gaussians_ply(g, src)
    win = make_main_window()
    assert win.open_path(src)
    return win, win.doc.gaussians.copy(), src


def _assert_same(a: Gaussians, b: Gaussians) -> None:
    for k in ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest", "segments"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)


def test_typed_position_moves_the_selection_and_undo_is_bit_exact(opened):
    win, g0, _src = opened
    win.doc.select([1])
    rows = win.doc.selected_rows()
    box = win.properties_panel.position[2]
    centre = float(g0.means[rows, 2].mean())
    box.setValue(centre + 0.25)
    box.editingFinished.emit()
    delta = box.value() - centre  # the box keeps 4 decimals; the centre lands on the typed value
    assert abs(delta - 0.25) < 1e-4
    g = win.doc.gaussians
    np.testing.assert_allclose(g.means[rows, 2], g0.means[rows, 2] + delta, atol=1e-6)
    assert float(g.means[rows, 2].mean()) == pytest.approx(box.value(), abs=1e-6)
    np.testing.assert_array_equal(g.means[rows, :2], g0.means[rows, :2])
    others = np.setdiff1d(np.arange(len(g)), rows)
    np.testing.assert_array_equal(g.means[others], g0.means[others])
    (op,) = win.doc.edits.ops
    assert op["op"] == "move" and op["delta"] == pytest.approx([0.0, 0.0, delta], abs=1e-6)
    np.testing.assert_array_equal(win.doc.edits.target_rows(op), rows)
    box.editingFinished.emit()  # leaving the field unchanged is not another edit
    assert len(win.doc.edits.ops) == 1
    assert win.actions.undo.isEnabled()
    win.actions.undo.trigger()
    _assert_same(win.doc.gaussians, g0)


def test_typed_rotation_turns_means_quats_and_sh_about_the_centre(opened):
    win, g0, _src = opened
    win.doc.select([2])
    rows = win.doc.selected_rows()
    panel = win.properties_panel
    for box, v in zip(panel.angles, (0.0, 0.0, 90.0)):
        box.setValue(v)
    panel.rotate_button.click()
    want = ops.rotate(g0, rows, (0.0, 0.0, 90.0))
    g = win.doc.gaussians
    for k, v in want.items():
        np.testing.assert_array_equal(getattr(g, k)[rows], v, err_msg=k)
    np.testing.assert_allclose(g.means[rows].mean(0), g0.means[rows].mean(0), atol=1e-5)
    assert [b.value() for b in panel.angles] == [0.0, 0.0, 0.0]
    assert "90" in panel.fields["rotations"].text()
    win.actions.undo.trigger()
    _assert_same(win.doc.gaussians, g0)


def test_a_whole_viewport_drag_is_one_undo_step(opened):
    win, g0, _src = opened
    win.doc.select([0])
    rows = win.doc.selected_rows()
    sig = win.canvas.signals.edit_drag
    sig.emit("start", 0.0, 0.0)
    for _ in range(5):
        sig.emit("move", 4.0, -2.0)
    sig.emit("end", 0.0, 0.0)
    g = win.doc.gaussians
    delta = g.means[rows] - g0.means[rows]
    assert np.abs(delta).max() > 0
    np.testing.assert_allclose(delta, np.broadcast_to(delta[0], delta.shape), atol=1e-5)
    # Screen right / up at the selection's depth: no motion along the view direction.
    assert abs(float(delta[0] @ win.canvas.camera.forward)) < 1e-5
    # Previews are not recorded: the drag is one transform step, its translation the whole motion.
    (op,) = win.doc.edits.ops
    assert op["op"] == "transform" and win.actions.undo.isEnabled()
    np.testing.assert_allclose(op["translate"], delta[0], atol=1e-5)
    win.actions.undo.trigger()
    _assert_same(win.doc.gaussians, g0)
    assert not win.actions.undo.isEnabled()


def test_recolour_from_the_colour_picker_and_locked_segments_are_skipped(opened, monkeypatch):
    from PySide6.QtGui import QColor
    from PySide6.QtWidgets import QColorDialog

    win, g0, _src = opened
    monkeypatch.setattr(QColorDialog, "getColor", lambda *a, **k: QColor(255, 0, 0))
    win.doc.set_locked([2], True)
    win.doc.select([1, 2])
    win.properties_panel.pick_color()
    g = win.doc.gaussians
    rows1, rows2 = win.doc.edits.rows_of(1), win.doc.edits.rows_of(2)
    np.testing.assert_array_equal(g.sh_dc[rows1], ops.recolor(g0, rows1, [1.0, 0.0, 0.0])["sh_dc"])
    np.testing.assert_array_equal(g.sh_dc[rows2], g0.sh_dc[rows2])
    np.testing.assert_array_equal(win.doc.edits.target_rows(win.doc.edits.ops[-1]), rows1)
    # The colour button shows the chosen colour exactly (not the tinted splats' mean).
    win.doc.select([1])
    assert win.properties_panel.color_button.text() == "#ff0000"


def test_duplicate_selects_the_copy_and_hide_isolate_are_view_state(opened):
    win, g0, _src = opened
    win.doc.select([1])
    win.actions.duplicate.trigger()
    assert win.doc.selection == {3}
    assert win.doc.segment_counts()[3] == win.doc.segment_counts()[1]
    assert win.canvas.renderer.count == len(g0) + 30
    win.editor.isolate()
    assert win.doc.hidden == {0, 1, 2}
    win.doc.select([0])
    win.editor.hide()
    assert 0 in win.doc.hidden and not win.doc.selection
    win.editor.show_all()
    assert not win.doc.hidden
    assert [op["op"] for op in win.doc.edits.ops] == ["duplicate"]
    win.actions.undo.trigger()
    assert win.doc.segment_ids() == [0, 1, 2] and win.canvas.renderer.count == len(g0)


def test_delete_and_recolour_reach_the_viewport(opened):
    win, _g0, _src = opened
    win.canvas.mode = "rgb"
    before = win.canvas.render_image((96, 72)).astype(int)
    win.doc.select([0, 1, 2])
    win.editor.recolor([0.0, 0.0, 1.0])
    selected = win.canvas.render_image((96, 72)).astype(int)
    win.doc.select_none()
    blue = win.canvas.render_image((96, 72)).astype(int)
    # Selected splats are tinted yellow in the viewport: red and green up, blue down.
    lit_sel = selected.max(axis=2) > 10
    assert (selected[lit_sel][:, 0] + selected[lit_sel][:, 1] > blue[lit_sel][:, 0] + blue[lit_sel][:, 1]).all()
    win.doc.select([0, 1, 2])
    lit = blue.max(axis=2) > 10
    assert lit.any() and (blue[lit][:, 2] >= blue[lit][:, 0]).all()
    assert np.abs(blue - before).max() > 50
    win.editor.delete()
    assert win.canvas.render_image((96, 72)).max() == 0
