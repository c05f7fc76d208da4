"""Splat-level edits and segment fixes (GUI-free): assign, merge, split, rename, transform drags, replay."""

import json

import numpy as np
import pytest

from coseg.edit import EditDocument
from coseg.edit.ops import axis_angle_quat, quat_to_matrix
from coseg.edit.project import StudioProject, load_project, save_project
from coseg.edit.rowsets import decode_rows, encode_rows
from coseg.edit.state import EditorState
from coseg.gaussians import Gaussians

FIELDS = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest", "segments")


def _model(n=300, seed=0):
    rng = np.random.default_rng(seed)
    g = Gaussians.from_points(rng.uniform(-1, 1, (n, 3)), rng.uniform(0, 1, (n, 3)), sh_degree=2)
    g.quats = rng.normal(size=(n, 4)).astype(np.float32)
    g.sh_rest = rng.normal(0, 0.1, g.sh_rest.shape).astype(np.float32)
    g.segments = (g.means[:, 0] > 0).astype(np.int32)
    return g


def _same(a: Gaussians, b: Gaussians) -> None:
    for f in FIELDS:
        assert getattr(a, f).tobytes() == getattr(b, f).tobytes(), f


def _replayed(doc: EditDocument, source: Gaussians, names=None) -> EditDocument:
    other = EditDocument(source, names)
    other.replay(json.loads(json.dumps(doc.ops)))
    return other


def test_rowsets_round_trip_and_reject_bigger_models():
    rows = np.array([0, 5, 6, 7, 299])
    spec = encode_rows(rows, 300)
    assert np.array_equal(decode_rows(spec, 300), rows)
    assert np.array_equal(decode_rows(spec, 400), rows)
    with pytest.raises(ValueError, match="made for 300"):
        decode_rows(spec, 200)


def test_assign_to_existing_and_new_segment_undo_and_replay():
    g = _model()
    doc = EditDocument(g, {0: "left", 1: "right"})
    rows = np.flatnonzero(g.segments == 1)[:10]
    doc.assign(rows, 0)
    assert (doc.segments[rows] == 0).all()
    new_id = doc.assign(rows[:4], None, "lamp")
    assert new_id == 2 and doc.name_of(2) == "lamp" and (doc.segments[rows[:4]] == 2).all()
    _same(_replayed(doc, g, {0: "left", 1: "right"}).gaussians, doc.gaussians)
    assert _replayed(doc, g).names[2] == "lamp"
    doc.undo()
    assert 2 not in doc.names and (doc.segments[rows] == 0).all()
    doc.undo()
    _same(doc.gaussians, EditDocument(g).gaussians)


def test_merge_and_rename_are_undoable_steps():
    g = _model()
    doc = EditDocument(g, {0: "left", 1: "right"})
    assert doc.merge([0, 1]) == 0
    assert doc.segment_ids().tolist() == [0]
    doc.rename(0, "room")
    assert doc.name_of(0) == "room"
    assert [op["op"] for op in doc.ops] == ["merge", "rename"]
    assert _replayed(doc, g, {0: "left"}).name_of(0) == "room"
    doc.undo()
    assert doc.name_of(0) == "left"
    doc.undo()
    assert doc.segment_ids().tolist() == [0, 1]


def test_split_finds_the_connected_parts():
    rng = np.random.default_rng(1)
    blobs = [rng.normal(c, 0.05, (200, 3)) for c in ((0, 0, 0), (2, 0, 0), (0, 2, 0))]
    pts = np.concatenate(blobs + [np.array([[2.0, 0.6, 0.0]])])  # one stray splat nearest the second blob
    g = Gaussians.from_points(pts, np.full_like(pts, 0.5))
    g.segments = np.zeros(len(pts), np.int32)
    doc = EditDocument(g, {0: "chairs"})
    new = doc.split(0)
    assert new == [1, 2]
    assert [doc.name_of(i) for i in new] == ["chairs part 2", "chairs part 3"]
    for part in range(3):
        assert len(np.unique(doc.segments[part * 200:(part + 1) * 200])) == 1
    assert len(np.unique(doc.segments[:600])) == 3
    assert doc.segments[600] == doc.segments[200]   # a part below min_points joins its nearest part
    _same(_replayed(doc, g, {0: "chairs"}).gaussians, doc.gaussians)
    doc.undo()
    assert doc.segment_ids().tolist() == [0]


def test_transform_scales_positions_and_splats_about_the_pivot():
    g = _model()
    doc = EditDocument(g)
    rows = np.arange(0, 300, 3)
    pivot = np.array([0.1, 0.2, 0.3])
    q = axis_angle_quat([0, 0, 1], 90)
    doc.transform_rows(rows, pivot, q, 2.0, (1.0, 0.0, 0.0))
    R = quat_to_matrix(q)
    want = (g.means[rows] - pivot) @ (2 * R).T + pivot + [1, 0, 0]
    np.testing.assert_allclose(doc.gaussians.means[rows], want, atol=1e-5)
    np.testing.assert_allclose(doc.gaussians.scales[rows], 2 * g.scales[rows], rtol=1e-5)
    others = np.setdiff1d(np.arange(300), rows)
    assert doc.gaussians.means[others].tobytes() == g.means[others].tobytes()
    with pytest.raises(ValueError, match="positive"):
        doc.transform_rows(rows, pivot, q, 0.0)


def test_a_whole_drag_is_one_step_equal_to_its_replay():
    g = _model()
    doc = EditDocument(g)
    heard = []
    doc.changed.connect(lambda rows: heard.append(rows))
    rows = np.flatnonzero(g.segments == 0)
    drag = doc.begin_transform(rows)
    assert doc.in_group
    for angle in np.linspace(0, 40, 12):
        drag.preview(axis_angle_quat([1, 1, 0], angle), 1.0 + angle / 100, (0, 0, angle / 50))
    assert not doc.can_undo and len(heard) == 12
    drag.commit(axis_angle_quat([1, 1, 0], 40), 1.4, (0, 0, 0.8))
    assert not doc.in_group and len(doc.history.undo_stack) == 1
    assert doc.ops[0]["op"] == "transform"
    _same(_replayed(doc, g).gaussians, doc.gaussians)
    doc.undo()
    _same(doc.gaussians, EditDocument(g).gaussians)
    cancelled = doc.begin_transform(rows)
    cancelled.preview(scale=3.0)
    cancelled.cancel()
    _same(doc.gaussians, EditDocument(g).gaussians)
    assert not doc.can_undo


def test_duplicate_rows_names_copies_and_offsets_them():
    g = _model()
    doc = EditDocument(g, {0: "table", 1: "lamp"})
    rows = np.flatnonzero(g.segments == 0)[:20]
    new = doc.duplicate_rows(rows, (0.0, 0.5, 0.0))
    assert new == [2] and doc.name_of(2) == "table copy"
    np.testing.assert_allclose(doc.gaussians.means[300:], g.means[rows] + [0, 0.5, 0], atol=1e-6)
    _same(_replayed(doc, g, {0: "table", 1: "lamp"}).gaussians, doc.gaussians)


def test_old_project_ops_replay_unchanged(tmp_path):
    g = _model()
    old = [{"op": "delete", "segments": [1]}, {"op": "duplicate", "segments": [0]},
           {"op": "rotate", "segments": [0], "degrees": [0.0, 0.0, 10.0]}]
    doc = EditDocument(g)
    doc.replay(old)
    assert doc.ops == old
    save_project(tmp_path / "p.cosegproj", StudioProject(tmp_path / "src.ply", doc.ops))
    assert load_project(tmp_path / "p.cosegproj").ops == old


def test_editor_state_follows_the_document():
    g = _model()
    doc = EditDocument(g)
    state = EditorState(doc)
    events = []
    state.selection_changed.connect(lambda: events.append("sel"))
    state.select_segments([1])
    assert state.selected_segments() == [1] and events == ["sel"]
    state.select_segments([1])
    assert events == ["sel"]                       # no change, no event: no echo loops
    state.set_locked([1], True)
    assert len(state.editable_rows()) == 0
    state.set_locked([1], False)
    doc.delete_rows(state.editable_rows())
    assert not state.selection.any()               # deleted rows leave the selection
    doc.undo()
    state.select_rows(np.arange(10), "replace")
    doc.duplicate_rows(state.selected_rows(), (1, 0, 0))
    assert len(state.selection) == 310 and not state.selection[300:].any()
    state.select_rows(np.arange(300, 310), "add")
    state.hide_selection()
    assert state.hidden[300:].all() and not state.selection.any()
    state.select_all()
    assert not state.selection[300:].any()        # hidden splats are not selectable
    state.show_all()
    doc.undo()
    assert len(state.selection) == 300
