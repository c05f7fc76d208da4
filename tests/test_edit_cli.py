"""`coseg edit` / `coseg export` end to end on a small segmented PLY."""

import numpy as np
import pytest

from coseg.cli import main
from coseg.io.ply import read_gaussians_ply, write_gaussians_ply
from coseg.io.splat import read_splat
from tests.test_edit import _random_gaussians


@pytest.fixture
def seg_ply(tmp_path):
    g = _random_gaussians(n=60, degree=1, segments=(1, 4, 7))
    path = tmp_path / "seg.ply"
    write_gaussians_ply(g, path)
    return g, path


def test_edit_delete_move_recolor(seg_ply, tmp_path, capsys):
    g, src = seg_ply
    out = tmp_path / "edited.ply"
    rc = main(["edit", str(src), "--delete", "4", "--move", "7", "1,0,0", "--recolor", "1", "#ff0000",
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    e = read_gaussians_ply(out)
    assert not (e.segments == 4).any()
    assert len(e) == int((g.segments != 4).sum())
    moved = e.means[e.segments == 7]
    np.testing.assert_allclose(moved, g.means[g.segments == 7] + [1, 0, 0], atol=1e-6)
    red = 0.5 + 0.28209479177387814 * e.sh_dc[e.segments == 1]
    assert np.all(red[:, 1] < 1e-5) and np.all(red[:, 2] < 1e-5)


def test_edit_refuses_to_overwrite_input(seg_ply, capsys):
    _, src = seg_ply
    assert main(["edit", str(src), "--delete", "4", "--out", str(src), "--force"]) == 1
    assert "refusing to write --out over an input" in capsys.readouterr().err


def test_edit_unknown_segment_is_clear(seg_ply, tmp_path, capsys):
    _, src = seg_ply
    assert main(["edit", str(src), "--delete", "99", "--out", str(tmp_path / "o.ply")]) == 1
    err = capsys.readouterr().err
    assert "segment 99 does not exist" in err and "1, 4, 7" in err


def test_export_selected_segments_as_splat(seg_ply, tmp_path):
    g, src = seg_ply
    out = tmp_path / "sel.splat"
    assert main(["export", str(src), "--segments", "1", "7", "--out", str(out)]) == 0
    s = read_splat(out)
    assert len(s) == int(np.isin(g.segments, [1, 7]).sum())


def test_export_plain_layout_has_no_segment(seg_ply, tmp_path):
    _, src = seg_ply
    out = tmp_path / "plain.ply"
    assert main(["export", str(src), "--format", "ply-plain", "--out", str(out)]) == 0
    assert read_gaussians_ply(out).segments is None
    header = out.read_bytes()[:4000].split(b"end_header")[0]
    assert b"segment" not in header


def test_edit_select_assign_split_rename_and_project(seg_ply, tmp_path, capsys):
    from coseg.edit.project import load_project

    g, src = seg_ply
    out, proj = tmp_path / "fixed.ply", tmp_path / "fixed.cosegproj"
    box = "box:-10,-10,-10,0,10,10"
    rc = main(["edit", str(src), "--select", box, "--select", "remove:segment:7", "--assign", "new:left part",
               "--merge", "1", "4", "--rename", "1", "one", "--scale", "7", "2",
               "--out", str(out), "--save-project", str(proj)])
    assert rc == 0, capsys.readouterr().err
    e = read_gaussians_ply(out)
    left = (g.means[:, 0] <= 0) & (g.segments != 7)
    assert (e.segments[left] == 8).all()
    assert set(e.segments[~left].tolist()) <= {1, 7}
    np.testing.assert_allclose(e.scales[g.segments == 7], 2 * g.scales[g.segments == 7], rtol=1e-5)
    project = load_project(proj)
    assert [op["op"] for op in project.ops] == ["assign", "merge", "rename", "transform"]
    # the project replays headless to the same file
    again = tmp_path / "again.ply"
    assert main(["edit", str(proj), "--out", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()


def test_edit_select_errors(seg_ply, tmp_path, capsys):
    _, src = seg_ply
    assert main(["edit", str(src), "--select", "cube:1", "--out", str(tmp_path / "x.ply")]) == 1
    assert "unknown selection" in capsys.readouterr().err
    assert main(["edit", str(src), "--select", "sphere:1,2", "--out", str(tmp_path / "x.ply")]) == 1
    assert "expected 4" in capsys.readouterr().err
