"""Readers and writers under the data-safety contract: NaN / inf Gaussians, empty PLYs,
label-map PNGs (palette mode, garbage files), stage results in run folders (docs/data-safety.md)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from coseg.cli import main
from coseg.errors import CosegError, InputError
from coseg.gaussians import Gaussians
from coseg.io.images import read_id_map, read_rgb
from coseg.io.ply import read_gaussians_ply, read_point_cloud, write_gaussians_ply, write_point_cloud, write_vertices
from coseg.io.splat import SPLAT_DTYPE, read_splat, write_splat
from coseg.run import RunDir


def _model(n=10) -> Gaussians:
    rng = np.random.default_rng(1)
    g = Gaussians.from_points(rng.uniform(-1, 1, (n, 3)), rng.uniform(0, 1, (n, 3)), sh_degree=1)
    g.segments = np.arange(n, dtype=np.int32) % 3
    return g


def _write_raw_ply(g: Gaussians, path) -> None:
    """A PLY with whatever values `g` holds (our writer refuses NaN, other tools do not)."""
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
             "rot_0", "rot_1", "rot_2", "rot_3"]
    v = np.empty(len(g), [(n, "<f4") for n in names])
    cols = np.concatenate([g.means, g.sh_dc, g.opacity_logits[:, None], g.log_scales, g.quats], axis=1)
    for i, n in enumerate(names):
        v[n] = cols[:, i]
    write_vertices(path, v)


def _poisoned() -> Gaussians:
    g = _model()
    g.means[1, 0] = np.nan
    g.log_scales[4, 2] = np.inf
    g.quats[7, 1] = -np.inf
    return g


# ------------------------------------------------------------ NaN / inf policy
def test_readers_drop_nonfinite_gaussians_with_one_warning(tmp_path, caplog):
    _write_raw_ply(_poisoned(), tmp_path / "nan.ply")
    with caplog.at_level(logging.WARNING, "coseg"):
        g = read_gaussians_ply(tmp_path / "nan.ply")
    assert len(g) == 7 and g.finite_mask().all()
    assert [r.getMessage() for r in caplog.records if "NaN" in r.getMessage()] == [
        f"{tmp_path / 'nan.ply'}: dropped 3 of 10 Gaussians with NaN or inf parameters"]
    rec = np.zeros(3, SPLAT_DTYPE)
    rec["scale"] = 1.0
    rec["position"][1] = [np.nan, 0, 0]
    (tmp_path / "nan.splat").write_bytes(rec.tobytes())
    assert len(read_splat(tmp_path / "nan.splat")) == 2
    write_point_cloud(tmp_path / "pts.ply", np.array([[0, 0, 0], [np.nan, 1, 1], [1, 1, 1]], np.float32))
    xyz, _ = read_point_cloud(tmp_path / "pts.ply")
    assert len(xyz) == 2


def test_writers_never_write_nonfinite_values(tmp_path):
    for write, name in ((write_gaussians_ply, "x.ply"), (write_splat, "x.splat")):
        with pytest.raises(CosegError, match=f"{name}: refusing to write 3 of 10 Gaussians with NaN or inf"):
            write(_poisoned(), tmp_path / name)
        assert list(tmp_path.iterdir()) == []


def test_info_counts_nonfinite_gaussians_and_export_writes_none(tmp_path, capsys):
    _write_raw_ply(_poisoned(), tmp_path / "nan.ply")
    assert main(["info", str(tmp_path / "nan.ply"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["gaussians"] == 10 and summary["nonfinite_gaussians"] == 3
    assert main(["export", str(tmp_path / "nan.ply"), "--out", str(tmp_path / "out.splat")]) == 0
    assert len(read_splat(tmp_path / "out.splat", keep_nonfinite=True)) == 7


def test_empty_and_all_nonfinite_models_are_one_clear_line(tmp_path, capsys):
    write_gaussians_ply(Gaussians.empty(), tmp_path / "empty.ply")
    assert len(read_gaussians_ply(tmp_path / "empty.ply")) == 0  # a valid file: readers return it
    g = _model()
    g.means[:] = np.nan
    _write_raw_ply(g, tmp_path / "allnan.ply")
    for name, needle in (("empty.ply", "holds no Gaussians (0 vertices)"), ("allnan.ply", "none of its 10")):
        assert main(["export", str(tmp_path / name), "--out", str(tmp_path / "o.ply")]) == 1
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------ label maps
def test_palette_label_maps_read_their_indices(tmp_path):
    from PIL import Image

    ids = (np.arange(48 * 64).reshape(48, 64) % 7).astype(np.uint8)
    im = Image.frombytes("P", (64, 48), ids.tobytes())
    im.putpalette([(i * 37) % 256 for i in range(768)])  # colours unrelated to the ids
    im.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(read_id_map(tmp_path / "p.png", (48, 64)), ids)


def test_a_garbage_png_is_one_short_line(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"this is no image")
    for read in (lambda p: read_id_map(p, (4, 4)), lambda p: read_rgb(p, (4, 4))):
        with pytest.raises(InputError) as e:
            read(tmp_path / "bad.png")
        message = str(e.value)
        assert "\n" not in message and "pip" not in message and message.startswith(str(tmp_path / "bad.png"))


# ------------------------------------------------------------ stage results
def test_stage_results_are_replaced_only_when_the_new_one_is_complete(tmp_path):
    run = RunDir.create(tmp_path / "run")
    for name in ("gaussians.ply", "segmented.ply", "segmentation.npz"):
        (run.path / name).write_text(f"old {name}")
    run.update_metrics("segmentation", {"miou": 0.5})
    assert run.check_stage_start("segmentation", overwrite=True) == "fresh"
    with pytest.raises(CosegError, match="already holds a building result"):
        run.start_stage("building")
    run.start_stage("building", overwrite=True)
    with pytest.raises(RuntimeError):  # a failed stage: the previous result stays, no staging folder
        with run.writing_results("building") as out:
            (out.dir / "gaussians.ply").write_text("half")
            raise RuntimeError("killed")
    assert (run.path / "gaussians.ply").read_text() == "old gaussians.ply"
    assert not list(run.path.glob(".*partial"))
    with run.writing_results("building") as out:
        (out.dir / "gaussians.ply").write_text("new")
        out.metrics = {"iterations": 3}
    assert (run.path / "gaussians.ply").read_text() == "new"
    assert run.read_metrics() == {"building": {"iterations": 3, "completed": True}}  # segmentation retired
    (kept,) = run.previous_dir.glob("building-*")
    assert (kept / "gaussians.ply").read_text() == "old gaussians.ply"
    (retired,) = run.previous_dir.glob("segmentation-*")  # made from the replaced Gaussians
    assert sorted(p.name for p in retired.iterdir()) == ["config.json", "metrics.json", "segmentation.npz",
                                                          "segmented.ply"]
    assert json.loads((retired / "metrics.json").read_text())["segmentation"] == {"miou": 0.5}
    assert not (run.path / "segmented.ply").exists()


def test_a_failed_run_start_leaves_no_run_folder(tmp_path):
    run = RunDir.create(tmp_path / "run")
    with run.log_to_file(), run.lock():
        pass
    assert run.discard_if_unused() and not run.path.exists()
    run = RunDir.create(tmp_path / "run2")
    (run.checkpoints_dir).mkdir()
    (run.checkpoints_dir / "ckpt_0000001.pt").write_text("progress")
    assert not run.discard_if_unused() and run.path.exists()  # a checkpoint is never thrown away
    assert not RunDir.open(run.path).discard_if_unused()  # only a folder this process created
