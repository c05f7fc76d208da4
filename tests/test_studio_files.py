"""Studio files: projects round trip, autosave and restore, export formats, the segment job."""

import json
import threading

import numpy as np
import pytest

from coseg.edit.project import StudioProject, autosave_path, load_project, save_project
from coseg.errors import InputError
from coseg.gaussians import Gaussians


def _model(n=90, segments=(0, 1, 2)) -> Gaussians:
    rng = np.random.default_rng(0)
    g = Gaussians.from_points(rng.uniform(-1, 1, (n, 3)), rng.uniform(0.2, 1, (n, 3)), scale=0.15, opacity=0.9)
    g.segments = np.array([segments[i % len(segments)] for i in range(n)], np.int32)
    return g


@pytest.fixture
def source(tmp_path):
    from coseg.io.ply import write_gaussians_ply

    path = tmp_path / "scene.ply"
    write_gaussians_ply(_model(), path)
    return path


def _edit(win):
    win.doc.select([1])
    win.editor.move([0.1, 0.0, -0.2])
    win.doc.select([2])
    win.editor.rotate([0.0, 30.0, 0.0])
    win.editor.duplicate()
    win.doc.select([0])
    win.editor.delete()


def test_project_file_checks_its_format(tmp_path):
    p = save_project(tmp_path / "a.cosegproj", StudioProject(tmp_path / "x.ply", [{"op": "delete", "segments": [1]}]))
    assert load_project(p).ops == [{"op": "delete", "segments": [1]}]
    (tmp_path / "b.cosegproj").write_text("{not json")
    with pytest.raises(InputError, match="b.cosegproj"):
        load_project(tmp_path / "b.cosegproj")
    (tmp_path / "c.cosegproj").write_text(json.dumps({"format": "cosegproj", "source": "x", "ops": [{"op": "melt"}]}))
    with pytest.raises(InputError, match="melt"):
        load_project(tmp_path / "c.cosegproj")
    (tmp_path / "x.ply").write_bytes(b"ply")
    with pytest.raises(InputError, match="overwrite"):
        save_project(tmp_path / "x.ply", StudioProject(tmp_path / "x.ply", []))
    assert (tmp_path / "x.ply").read_bytes() == b"ply"


@pytest.mark.gui
def test_project_save_and_reopen_replays_the_edits_and_view(make_main_window, source, tmp_path):
    win = make_main_window()
    assert win.open_path(source)
    _edit(win)
    win.doc.rename(1, "chair")
    win.doc.set_hidden([2], True)
    proj = win.projects.save(tmp_path / "edit.cosegproj")
    assert json.loads(proj.read_text())["source"] == str(source.resolve())
    other = make_main_window()
    assert other.open_path(proj)
    a, b = win.doc.edits, other.doc.edits
    np.testing.assert_array_equal(a.deleted, b.deleted)
    for k in ("means", "quats", "sh_rest", "segments"):
        np.testing.assert_array_equal(getattr(a.gaussians, k), getattr(b.gaussians, k), err_msg=k)
    assert other.doc.name_of(1) == "chair" and other.doc.hidden == {2}
    np.testing.assert_allclose(other.canvas.camera.rotation, win.canvas.camera.rotation)
    assert other.canvas.renderer.count == len(b.gaussians)
    assert not other.projects.dirty


@pytest.mark.gui
def test_autosave_after_every_edit_and_restore_on_reopen(make_main_window, source, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    win = make_main_window()
    assert win.open_path(source)
    auto = autosave_path(source)
    assert not auto.exists()
    win.doc.select([1])
    win.editor.delete()
    (op,) = load_project(auto).ops
    assert op["op"] == "delete"
    np.testing.assert_array_equal(win.doc.edits.target_rows(op), win.doc.edits.segments.__eq__(1).nonzero()[0])
    win.doc.select([2])
    win.editor.move([0.0, 0.5, 0.0])
    assert len(load_project(auto).ops) == 2
    win.actions.undo.trigger()
    assert len(load_project(auto).ops) == 1
    # A crash: the window goes away without closing; the next open offers the edits.
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.Yes)
    other = make_main_window()
    assert other.open_path(source)
    assert asked and "1 unsaved edit" in asked[0]
    assert other.doc.segment_ids() == [0, 2]
    # Closing with the edits saved in a project drops the autosave.
    other.projects.save(source.parent / "kept.cosegproj")
    other.close()
    assert not auto.exists()


@pytest.mark.gui
def test_headless_runs_write_no_autosave(make_main_window, source):
    # `coseg-studio --benchmark` edits the model to time edits: nothing to offer for restoring later
    win = make_main_window()
    win.headless = True
    assert win.open_path(source)
    win.doc.select([1])
    win.editor.delete()
    assert win.doc.segment_ids() == [0, 2]
    assert not autosave_path(source).exists()


@pytest.mark.gui
def test_export_formats_and_selected_segments_only(make_main_window, source, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from coseg.io.ply import read_gaussians_ply
    from coseg.io.splat import read_splat

    win = make_main_window()
    assert win.open_path(source)
    win.doc.select([1])
    win.editor.delete()
    plain = tmp_path / "plain"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(plain), "Plain INRIA PLY, no segment (*.ply)"))
    assert win.projects.export() == tmp_path / "plain.ply"
    g = read_gaussians_ply(tmp_path / "plain.ply")
    assert len(g) == 60 and g.segments is None
    assert win.projects.export(path=tmp_path / "all.splat") == tmp_path / "all.splat"
    assert len(read_splat(tmp_path / "all.splat")) == 60
    win.doc.select([2])
    out = win.projects.export(selected_only=True, path=tmp_path / "two.ply")
    sel = read_gaussians_ply(out)
    assert len(sel) == 30 and set(sel.segments.tolist()) == {2}
    shown = []
    monkeypatch.setattr(win, "show_error", lambda title, msg: shown.append(msg))
    assert win.projects.export(selected_only=True, path=tmp_path / "two.ply") is None
    assert shown and "exists" in shown[0]
    # The formats other tools write: picked by the dialog's filter, and opened again by the studio.
    for name, filt, suffix in (("sp", "Niantic SPZ (*.spz)", ".spz"),
                               ("pc", "Compressed PLY, PlayCanvas / SuperSplat (*.compressed.ply)", ".compressed.ply")):
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, filt=filt, name=name, **k:
                            (str(tmp_path / name), filt))
        out = win.projects.export()
        assert out == tmp_path / f"{name}{suffix}"
        other = make_main_window()
        assert other.open_path(out)
        assert len(other.doc.gaussians) == 60


@pytest.mark.gui
def test_segment_job_reports_progress_and_stops(qtbot, tmp_path):
    from scipy.spatial import cKDTree

    from app.jobs import segment_worker
    from coseg.io.ply import read_point_cloud, write_gaussians_ply
    from coseg.run import RunDir
    from coseg.segment.config import SegmentConfig
    from coseg.synth import SynthConfig, generate

    scene = tmp_path / "scene"
    generate(scene, SynthConfig(views=4, test_views=1, width=32, height=24, points=1500, seed=3))
    xyz, rgb = read_point_cloud(scene / "points3d.ply")
    d, _ = cKDTree(xyz).query(xyz, k=4)
    run = RunDir.create(tmp_path / "run", scene)
    write_gaussians_ply(Gaussians.from_points(xyz, rgb, scale=np.maximum(d[:, 1:].mean(1), 1e-3), opacity=0.9),
                        run.gaussians_path)
    config = SegmentConfig(iterations=10_000, log_every=1,
                           field_config={"extractor": "appearance", "spatial_weights": "random"})
    worker = segment_worker(tmp_path / "run", config)
    records, trained = [], threading.Event()

    def on_progress(rec):
        records.append(rec)
        if rec.get("stage") == "train":
            trained.set()
            worker.stop()

    worker.progress.connect(on_progress)
    with qtbot.waitSignal(worker.finished_with, timeout=120_000) as blocker:
        worker.start()
    worker.wait()
    stages = [r["stage"] for r in records]
    assert "features" in stages and trained.is_set()
    assert blocker.args[0]["stage"] == "stopped" and blocker.args[0]["iteration"] < 10_000
    assert (tmp_path / "run" / "checkpoints" / "segment.pt").exists()


@pytest.mark.gui
def test_build_preview_shows_each_new_checkpoint_keeping_the_camera(make_main_window, qtbot, tmp_path):
    import torch

    from app.jobs import BuildPreview
    from app.loading import LoadedModel
    from coseg.building.checkpoint import save_checkpoint
    from coseg.building.optim import create_params

    win = make_main_window()
    win.set_loaded(LoadedModel(tmp_path / "scene", "scene", _model(n=30)))
    rotation = win.canvas.camera.rotation.copy()
    preview = BuildPreview(win, tmp_path / "run")
    preview.poll()  # no checkpoint yet: nothing happens
    assert preview.shown == -1
    for iteration, n in ((500, 40), (1000, 50)):
        params = create_params(_model(n=n), 0)
        save_checkpoint(tmp_path / "run" / "checkpoints", iteration, params, torch.optim.Adam(params.values()), {}, {})
        with qtbot.waitSignal(preview.ready, timeout=20_000):
            preview.poll({"iteration": iteration})
        assert preview.shown == iteration and len(win.doc.gaussians) == n
        assert win.canvas.renderer.count == n and f"iteration {iteration}" in win.note_label.text()
    np.testing.assert_array_equal(win.canvas.camera.rotation, rotation)
