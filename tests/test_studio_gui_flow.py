"""A user's session in a real window, driven by mouse and keyboard events on the real widgets.

Click an object -> it is selected and drawn yellow -> Shift + lasso part of
its neighbour -> assign the selection to the first segment -> Delete ->
Ctrl+Z -> export -> `coseg info` on the export counts every Gaussian and
the reassigned ones in segment 0. The window is screenshotted at the end
(into $COSEG_SCREENSHOT_DIR when set, for the docs; else the test's tmp dir).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from coseg.gaussians import Gaussians

pytestmark = pytest.mark.gui


def _two_objects(n: int = 400) -> Gaussians:
    """A "table" (segment 0) left of a "lamp" (segment 1), each a dense blob of splats."""
    rng = np.random.default_rng(3)
    left = rng.normal((-0.6, 0.0, 0.0), (0.25, 0.25, 0.25), (n, 3))
    right = rng.normal((0.6, 0.0, 0.0), (0.25, 0.25, 0.25), (n, 3))
    pts = np.concatenate([left, right])
    colors = np.concatenate([np.tile([0.6, 0.4, 0.25], (n, 1)), np.tile([0.2, 0.35, 0.8], (n, 1))])
    g = Gaussians.from_points(pts, colors, scale=0.05, opacity=0.95)
    g.segments = np.repeat(np.array([0, 1], np.int32), n)
    return g


def _screen_pos(win, point) -> tuple[int, int]:
    """Logical pixel of a world point in the viewport."""
    from app.tools import ViewportTools

    view = ViewportTools._view(win.tools)
    x, y = view.project(np.asarray(point, np.float64)[None])[0]
    return int(round(x)), int(round(y))


def _qpoint(p):
    from PySide6.QtCore import QPoint

    return QPoint(int(p[0]), int(p[1]))


def test_click_lasso_assign_delete_undo_export(make_main_window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QFileDialog

    from coseg.cli.info import summarize
    from coseg.io.ply import write_gaussians_ply

    g = _two_objects()
    src = tmp_path / "objects.ply"
    write_gaussians_ply(g, src)
    (tmp_path / "classes.json").write_text(json.dumps({"0": "table", "1": "lamp"}))
    win = make_main_window(size=(640, 480))
    win.resize(1100, 700)
    qtbot.wait(100)
    assert win.open_path(src)
    cam = win.canvas.camera
    cam.rotation = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])  # look along +z, x right, y down
    cam.frame(np.zeros(3), 1.2)
    win.after_camera_jump(1.2)
    qtbot.wait(300)
    native = win.canvas.native
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=3000)  # window shortcuts need the active window
    native.setFocus()

    # 1. Click the table: its segment is selected, and it is drawn selected.
    before = win.canvas.render_image(tuple(win.canvas.physical_size)).astype(int)
    table_px = _screen_pos(win, (-0.6, 0.0, 0.0))
    QTest.mouseClick(native, Qt.LeftButton, Qt.NoModifier, _qpoint(table_px))
    qtbot.waitUntil(lambda: win.doc.selection == {0}, timeout=3000)
    assert int(win.doc.state.selection.sum()) == 400
    after = win.canvas.render_image(tuple(win.canvas.physical_size)).astype(int)
    r = win.canvas.pixel_scale
    tx, ty = int(table_px[0] * r), int(table_px[1] * r)
    patch_before, patch_after = before[ty - 3:ty + 4, tx - 3:tx + 4], after[ty - 3:ty + 4, tx - 3:tx + 4]
    assert (patch_after[..., 1] - patch_before[..., 1]).mean() > 20     # yellow: more green ...
    assert (patch_after[..., 2] - patch_before[..., 2]).mean() < 20     # ... not more blue
    assert "400 selected" in win.count_label.text()

    # 2. L for the lasso, then Shift + drag around the left half of the lamp: added to the selection.
    QTest.keyClick(native, Qt.Key_L)
    assert win.tools.tool == "lasso"
    corners = [(0.1, -0.8, 0.0), (0.6, -0.8, 0.0), (0.6, 0.8, 0.0), (0.1, 0.8, 0.0)]
    path = [_screen_pos(win, c) for c in corners]
    QTest.mousePress(native, Qt.LeftButton, Qt.ShiftModifier, _qpoint(path[0]))
    for a, b in zip(path, path[1:] + path[:1]):
        for t in np.linspace(0, 1, 6)[1:]:
            QTest.mouseMove(native, _qpoint((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))))
            qtbot.wait(5)  # deliver each move (the window system merges queued ones)
    QTest.mouseRelease(native, Qt.LeftButton, Qt.ShiftModifier, _qpoint(path[0]))
    # Qt keeps the last input event's modifiers as the application's: let go of Shift for what follows
    # (item views extend their selection while it looks held).
    QTest.mouseClick(win.count_label, Qt.LeftButton, Qt.NoModifier)
    lamp_rows = np.flatnonzero(g.segments == 1)
    view = win.tools._view()
    xy = view.project(g.means.astype(np.float64))
    poly = np.array(path, float)
    inside = (xy[:, 0] > poly[:, 0].min() + 1) & (xy[:, 0] < poly[:, 0].max() - 1) & \
             (xy[:, 1] > poly[:, 1].min() + 1) & (xy[:, 1] < poly[:, 1].max() - 1)
    selected = win.doc.state.selection
    assert selected[:400].all()                                  # Shift kept the table
    picked_lamp = lamp_rows[selected[lamp_rows]]
    assert 50 < len(picked_lamp) < 400
    assert selected[lamp_rows[inside[lamp_rows]]].all()          # every lamp splat well inside the lasso
    assert win.doc.selection == {0, 1}

    # 3. Assign the selection to the first segment ("table") from the selection panel.
    panel = win.selection_panel
    panel.toolbox.setCurrentIndex(3)
    panel.target.setCurrentIndex(0)
    assert panel.target.currentData() == 0
    qtbot.mouseClick(panel.assign_button, Qt.LeftButton)
    seg = win.doc.edits.segments
    assert (seg[picked_lamp] == 0).all() and win.doc.segment_counts()[0] == 400 + len(picked_lamp)

    # 4. Delete, then Ctrl+Z: the status bar tells the truth after each.
    native.setFocus()
    QTest.keyClick(native, Qt.Key_Delete)
    assert win.doc.segment_counts() == {1: 400 - len(picked_lamp)}
    assert win.count_label.text().startswith(f"{400 - len(picked_lamp):,} Gaussians")
    QTest.keyClick(native, Qt.Key_Z, Qt.ControlModifier)
    assert win.doc.segment_counts() == {0: 400 + len(picked_lamp), 1: 400 - len(picked_lamp)}
    assert win.count_label.text().startswith("800 Gaussians")

    # 5. Export (Ctrl+E; the file dialog answers with a name), then `coseg info` on the file.
    out = tmp_path / "objects-fixed.ply"
    offered = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: offered.append(a[2]) or (str(out), "INRIA PLY with segment (*.ply)"))
    QTest.keyClick(native, Qt.Key_E, Qt.ControlModifier)
    assert offered == [str(tmp_path / "objects-edited.ply")]  # beside the opened file, named after it
    QTest.mouseClick(win.count_label, Qt.LeftButton, Qt.NoModifier)  # Ctrl is let go of, as above
    info = summarize(out)
    assert info["gaussians"] == 800
    assert info["segments"] == {0: 400 + len(picked_lamp), 1: 400 - len(picked_lamp)}

    shots = Path(os.environ.get("COSEG_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    qtbot.wait(300)
    image = win.screen().grabWindow(win.winId())
    assert image.save(str(shots / "gui-flow.png"))
    assert image.width() >= 1000
