"""The studio under the data-safety contract (docs/data-safety.md, docs/studio.md).

Export never writes over the open run's results or its scene's inputs; an
autosave whose edits no longer fit the model is refused with a message;
empty and NaN models give a message, not a black viewport.
"""

from __future__ import annotations

import numpy as np
import pytest

from coseg.edit.project import autosave_path, load_project
from coseg.gaussians import Gaussians
from coseg.io.ply import write_gaussians_ply, write_vertices
from coseg.run import RunDir
from tests.test_studio_files import _model

pytestmark = pytest.mark.gui


@pytest.fixture
def run(tmp_path):
    run = RunDir.create(tmp_path / "run")
    write_gaussians_ply(_model(), run.gaussians_path)
    write_gaussians_ply(_model(), run.path / "segmented.ply")
    return run


def test_export_over_the_open_runs_results_is_refused(make_main_window, run, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    win = make_main_window()
    assert win.open_path(run.path)
    win.doc.select([1])
    win.editor.delete()
    shown = []
    monkeypatch.setattr(win, "show_error", lambda title, msg: shown.append(msg))
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    for target in ("segmented.ply", "gaussians.ply"):
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(run.path / target), "PLY"))
        win.export_dialog()  # Qt's own "Replace?" was answered Yes: the refusal still holds
        assert len(shown) == 1 and "refusing" in shown[0] and target in shown[0]
        shown.clear()
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()} == before
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(run.path / "edited.ply"), "PLY"))
    win.export_dialog()  # beside the results is fine
    assert not shown and (run.path / "edited.ply").exists()


def test_autosaved_edits_that_no_longer_fit_are_refused_with_a_message(make_main_window, run, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    win = make_main_window()
    assert win.open_path(run.path)
    win.doc.select([2])
    win.editor.delete()
    auto = autosave_path(run.path)
    edits = load_project(auto).ops
    assert len(edits) == 1 and edits[0]["op"] == "delete"
    win.close()
    write_gaussians_ply(_model(segments=(0, 1)), run.path / "segmented.ply")  # segmented again: no segment 2
    warnings, asked = [], []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.Yes)
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: warnings.append(a[2]))
    other = make_main_window()
    assert other.open_path(run.path)
    assert not asked and len(warnings) == 1
    assert "segmented again" in warnings[0] and "Nothing was restored" in warnings[0]
    assert other.doc.edits.ops == [] and other.doc.segment_ids() == [0, 1]
    assert not auto.exists()
    (kept,) = auto.parent.glob(f"{auto.stem}.unrestored-*")
    assert load_project(kept).ops == edits  # the edits are not lost
    # the same model again: its autosave is offered as before
    other.doc.select([1])
    other.editor.delete()
    other.close()
    third = make_main_window()
    assert third.open_path(run.path) and len(asked) == 1 and len(warnings) == 1
    assert len(third.doc.edits.ops) == 1


def test_an_empty_ply_opens_with_a_message(make_main_window, tmp_path, monkeypatch):
    write_gaussians_ply(Gaussians.empty(), tmp_path / "empty.ply")
    win = make_main_window()
    shown = []
    monkeypatch.setattr(win, "show_error", lambda title, msg: shown.append(msg))
    assert not win.open_path(tmp_path / "empty.ply")
    assert shown == [f"{tmp_path / 'empty.ply'}: holds no Gaussians (0 vertices)"]


def test_nan_gaussians_are_dropped_and_the_viewport_is_not_black(make_main_window, tmp_path):
    g = _model()
    g.means[::10, 1] = np.nan
    g.log_scales[5, 0] = np.inf
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
             "rot_0", "rot_1", "rot_2", "rot_3", "segment"]
    cols = np.concatenate([g.means, g.sh_dc, g.opacity_logits[:, None], g.log_scales, g.quats,
                           g.segments[:, None]], axis=1)
    v = np.empty(len(g), [(n, "<f4") for n in names[:-1]] + [("segment", "<i4")])
    for i, n in enumerate(names):
        v[n] = cols[:, i]
    write_vertices(tmp_path / "nan.ply", v)  # another tool's file: our writers refuse NaN
    win = make_main_window()
    assert win.open_path(tmp_path / "nan.ply")
    assert len(win.doc.gaussians) == 90 - 10 and "10 Gaussians with NaN or inf values were dropped" in \
        win.note_label.text()
    assert win.canvas.render_image((64, 48)).max() > 0


def test_a_screenshot_over_an_input_is_refused(qapp, run, capsys):
    from app.main import main

    before = (run.path / "segmented.ply").read_bytes()
    assert main([str(run.path), "--screenshot", str(run.path / "segmented.ply"), "--size", "64x48"]) == 1
    assert "refusing" in capsys.readouterr().err and (run.path / "segmented.ply").read_bytes() == before
    with pytest.raises(SystemExit, match="--size 8x8"):
        main([str(run.path), "--screenshot", str(run.path / "shot.png"), "--size", "8x8"])
