"""The studio's main window: opening files and folders, errors, panels, screenshots, edits."""

import json
from pathlib import Path

import numpy as np
import pytest

from coseg.gaussians import Gaussians

pytestmark = pytest.mark.gui


def _model(n=60, segments=(0, 1, 2)) -> Gaussians:
    rng = np.random.default_rng(0)
    g = Gaussians.from_points(rng.uniform(-1, 1, (n, 3)), rng.uniform(0.2, 1, (n, 3)), scale=0.15, opacity=0.9)
    g.segments = np.array([segments[i % len(segments)] for i in range(n)], np.int32)
    return g


def _write_ply(path: Path, g: Gaussians) -> Path:
    from coseg.io.ply import write_gaussians_ply

    write_gaussians_ply(g, path)
    return path


def test_window_opens_and_closes_cleanly(make_main_window):
    win = make_main_window()
    assert win.windowTitle() == "CoSeg Studio"
    assert not win.doc.is_open
    assert win.canvas.render_image((64, 48)).max() == 0


def test_broken_ply_shows_an_error_dialog(make_main_window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "critical", lambda *a, **k: shown.append(a[1:3]))
    bad = tmp_path / "broken.ply"
    bad.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\nend_header\n\x00")
    win = make_main_window()
    assert not win.open_path(bad)
    assert len(shown) == 1 and "broken.ply" in shown[0][1] and "\n" not in shown[0][1]
    assert not win.doc.is_open
    assert not win.open_path(tmp_path / "missing.ply")
    assert len(shown) == 2


def test_open_ply_fills_segments_panel_and_selection_sync(make_main_window, tmp_path):
    g = _model()
    (tmp_path / "classes.json").write_text(json.dumps({"0": "floor", "1": "chair", "2": "lamp"}))
    win = make_main_window()
    assert win.open_path(_write_ply(tmp_path / "scene.ply", g))
    table = win.segments_panel.table
    assert table.rowCount() == 3
    assert [table.item(r, 3).text() for r in range(3)] == ["floor", "chair", "lamp"]
    assert [table.item(r, 4).text() for r in range(3)] == ["20", "20", "20"]
    win.doc.select([1])
    assert [i.row() for i in table.selectionModel().selectedRows()] == [1]
    assert win.properties_panel.fields["gaussians"].text() == "20"
    table.selectRow(2)
    assert win.doc.selection == {2}
    win.doc.invert_selection()
    assert win.doc.selection == {0, 1}
    table.item(0, 3).setText("ground")
    assert win.doc.name_of(0) == "ground"
    assert win.recent_files()[0] == str((tmp_path / "scene.ply").resolve())


@pytest.mark.parametrize("screen", [(1440, 900), (1600, 1000), (1920, 1080)])
def test_segments_panel_columns_fit_their_text(make_main_window, screen):
    """At the window size the studio opens with on common screens, no cell of the Segments table is elided."""
    from PySide6.QtWidgets import QApplication, QStyle

    from app.loading import LoadedModel

    # 120 segments "object k" (three-digit ids: a vertical scroll bar) and one of 10,000+ Gaussians.
    g = _model(n=12_000, segments=list(range(120)))
    g.segments[:10_500] = 7
    loaded = LoadedModel(Path("objects.ply"), "ply", g, classes={k: f"object {k}" for k in range(120)}, note="")
    win = make_main_window()
    win.resize(int(0.9 * screen[0]), int(0.9 * screen[1]))  # as `fill_screen` sizes it
    QApplication.processEvents()
    win.set_loaded(loaded)
    win.doc.select([7, 100])  # the Sel column holds counts too
    QApplication.processEvents()
    table = win.segments_panel.table
    fm = table.fontMetrics()
    # An item view draws its text inside the cell (column width less the 1 px grid line) less this on both sides.
    margin = table.style().pixelMetric(QStyle.PM_FocusFrameHMargin, None, table) + 1
    for col in range(table.columnCount()):
        texts = [table.item(r, col).text() for r in range(table.rowCount())]
        widest = max(fm.horizontalAdvance(t) for t in texts)
        assert widest + 2 * margin <= table.columnWidth(col) - 1, (col, max(texts, key=fm.horizontalAdvance))
        header = table.horizontalHeader()
        assert header.sectionSizeHint(col) <= header.sectionSize(col), table.horizontalHeaderItem(col).text()
    assert sum(table.columnWidth(c) for c in range(table.columnCount())) <= table.viewport().width()
    assert win.canvas.native.width() >= 0.55 * win.width()  # the viewport keeps most of the window


@pytest.mark.parametrize("screen", [(1440, 900), (1920, 1080)])
def test_properties_boxes_show_typical_values_unclipped(make_main_window, screen):
    """Position, rotation and scale boxes hold a working-frame coordinate such as -10.1647 in full."""
    from PySide6.QtWidgets import QApplication

    from app.loading import LoadedModel
    from app.properties import SPIN_MARGIN

    g = _model(n=200)
    g.means[:] = np.array([-10.1647, -10.3906, 14.4098], np.float32)
    win = make_main_window()
    win.resize(int(0.9 * screen[0]), int(0.9 * screen[1]))
    QApplication.processEvents()
    win.set_loaded(LoadedModel(Path("far.ply"), "ply", g))
    win.doc.select([0, 1])
    QApplication.processEvents()
    panel = win.properties_panel
    for box in [*panel.position, *panel.angles, panel.factor]:
        text = box.lineEdit().text()
        assert box.fontMetrics().horizontalAdvance(text) + 2 * SPIN_MARGIN <= box.width(), text
    assert panel.position[0].lineEdit().text().startswith("-10.16")
    assert win.canvas.native.width() >= 0.55 * win.width()  # the viewport keeps most of the window


def test_hide_delete_undo_update_the_viewport(make_main_window):
    from app.loading import LoadedModel

    win = make_main_window()
    g = _model()
    win.set_loaded(LoadedModel(Path("mem.ply"), "ply", g))
    win.set_mode("segmentation")
    assert win.actions.mode_actions["segmentation"].isChecked()  # the toolbar shows the mode set from code
    assert not win.actions.mode_actions["rgb"].isChecked()
    before = win.canvas.render_image((96, 72))
    win.doc.select([0, 1, 2])
    win.hide_selection()
    assert win.canvas.render_image((96, 72)).max() == 0
    win.show_all()
    assert np.array_equal(win.canvas.render_image((96, 72)), before)
    win.doc.select([1])
    win.doc.locked = {1}
    win.delete_selection()
    assert win.doc.segment_ids() == [0, 1, 2]
    win.doc.locked = set()
    win.delete_selection()
    assert win.doc.segment_ids() == [0, 2]
    assert not np.array_equal(win.canvas.render_image((96, 72)), before)
    assert win.doc.undo()
    assert np.array_equal(win.canvas.render_image((96, 72)), before)


def test_open_run_folder_reads_scene_cameras_and_classes(make_main_window, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _write_ply(run / "gaussians.ply", _model(segments=(0,)))
    _write_ply(run / "segmented.ply", _model(segments=(4, 5)))
    (run / "classes.json").write_text(json.dumps(["a", "b", "c", "d", "table", "sofa"]))
    (run / "config.json").write_text(json.dumps({"scene": {"path": None}}))
    win = make_main_window()
    assert win.open_path(run)
    assert win.doc.loaded.kind == "run"
    assert win.doc.segment_ids() == [4, 5]
    assert win.doc.name_of(5) == "sofa"


def test_screenshot_command_writes_a_non_blank_png(qapp, tmp_path):
    import imageio.v3 as iio

    from app.main import main

    ply = _write_ply(tmp_path / "m.ply", _model())
    out = tmp_path / "shot.png"
    assert main([str(ply), "--screenshot", str(out), "--mode", "segmentation", "--size", "200x150"]) == 0
    img = iio.imread(out)
    assert img.shape == (150, 200, 3)
    assert (img.max(axis=2) > 30).mean() > 0.05
    assert main([str(tmp_path / "nothing.ply"), "--screenshot", str(tmp_path / "x.png")]) == 1
    assert not (tmp_path / "x.png").exists()


def _nerf_scene(root: Path) -> Path:
    import imageio.v3 as iio

    from coseg.io.ply import write_point_cloud

    (root / "images").mkdir(parents=True)
    frames = []
    for i in range(2):
        iio.imwrite(root / "images" / f"v{i}.png", np.full((24, 32, 3), 100 + 50 * i, np.uint8))
        c2w = np.eye(4)
        c2w[:3, 3] = [0.3 * i, 0.0, 4.0]  # OpenGL: looks along -z at the origin
        frames.append({"file_path": f"images/v{i}", "transform_matrix": c2w.tolist()})
    for split in ("train", "test"):
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.8, "frames": frames}))
    rng = np.random.default_rng(0)
    write_point_cloud(root / "points3d.ply", rng.uniform(-1, 1, (500, 3)).astype(np.float32),
                      rng.uniform(0, 1, (500, 3)).astype(np.float32))
    return root


def test_open_scene_folder_shows_points_and_snaps_to_cameras(make_main_window, tmp_path):
    scene = _nerf_scene(tmp_path / "scene")
    win = make_main_window()
    assert win.open_path(scene)
    assert win.doc.loaded.kind == "scene" and len(win.doc.gaussians) == 500
    assert "until a run exists" in win.note_label.text()
    assert win.actions.cameras_menu.isEnabled()
    win.snap_to_camera(1)
    cam = win.doc.loaded.scene.cameras[1]
    np.testing.assert_allclose(win.canvas.camera.position, cam.center, atol=1e-6)
    img = win.canvas.render_image((cam.width, cam.height))
    assert (img.max(axis=2) > 20).mean() > 0.2


def test_benchmark_command_prints_every_row(qapp, capsys):
    from app.main import main

    assert main(["random:3000", "--benchmark", "--frames", "3", "--size", "96x64"]) == 0
    out = capsys.readouterr().out
    for row in ("Gaussians", "startup to first frame", "orbit FPS (full res", "orbit FPS (0.5x",
                "orbit FPS (adaptive", "at-rest FPS", "naive point sprites", "pick latency", "lasso select",
                "assign", "gizmo rotate drag"):
        assert row in out
    assert "3,000" in out and "96x64" in out


def test_delete_then_export_drops_exactly_that_segment(make_main_window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from coseg.io.ply import read_gaussians_ply

    g = _model(n=90)
    src = _write_ply(tmp_path / "in.ply", g)
    out = tmp_path / "edited.ply"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), "PLY"))
    win = make_main_window()
    assert win.open_path(src)
    win.doc.select([1])
    win.actions.delete.trigger()
    win.export_dialog()
    edited = read_gaussians_ply(out)
    keep = g.segments != 1
    assert len(edited) == int(keep.sum()) and 1 not in set(edited.segments.tolist())
    np.testing.assert_array_equal(edited.means, g.means[keep])
    win.actions.undo.trigger()
    assert win.doc.segment_ids() == [0, 1, 2]
    np.testing.assert_array_equal(win.doc.edits.result().means, g.means)
    # Exporting over the input file is refused with a dialog, never done silently.
    shown = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(src), "PLY"))
    monkeypatch.setattr(win, "show_error", lambda title, msg: shown.append(msg))
    before = src.read_bytes()
    win.export_dialog()
    assert shown and src.read_bytes() == before


def test_feature_pca_mode_only_with_feature_properties(make_main_window):
    from app.loading import LoadedModel

    win = make_main_window()
    g = _model()
    win.set_loaded(LoadedModel(Path("plain.ply"), "ply", g))
    assert not win.actions.mode_actions["features"].isEnabled()
    rng = np.random.default_rng(1)
    g.extra = {f"feature_{i}": rng.normal(size=len(g)).astype(np.float32) for i in range(12)}
    win.set_loaded(LoadedModel(Path("feat.ply"), "ply", g))
    assert win.actions.mode_actions["features"].isEnabled()
    win.actions.mode_actions["features"].trigger()
    img = win.canvas.render_image((96, 72))
    assert (img.max(axis=2) > 20).mean() > 0.05
