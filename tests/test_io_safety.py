"""The shared output check of the data-safety contract (coseg.io.safety)."""

import errno

import pytest

from coseg.errors import CosegError
from coseg.io.safety import OutputRefused, check_output, input_files, os_errors, run_results, scene_inputs


def _scene(tmp_path):
    root = tmp_path / "scene"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(b"x")
    (root / "labels").mkdir()
    (root / "transforms_train.json").write_text("{}")
    return root


def test_outputs_inside_or_over_scene_inputs_are_refused(tmp_path):
    root = _scene(tmp_path)
    p = scene_inputs(root)
    for bad in (root / "images", root / "images" / "x.png", root / "labels" / "a.png",
                root / "transforms_train.json", root, tmp_path):
        with pytest.raises(OutputRefused, match="refusing"):
            check_output(bad, p)
    assert check_output(root / "renders", p) == (root / "renders").resolve()
    assert check_output(tmp_path / "run", p) == (tmp_path / "run").resolve()


def test_run_results_and_input_files_are_refused(tmp_path):
    run = tmp_path / "run"
    p = run_results(run) | input_files([tmp_path / "in.ply"])
    for bad in (run / "gaussians.ply", run / "segmented.ply", run / "checkpoints" / "x.pt", tmp_path / "in.ply"):
        with pytest.raises(OutputRefused):
            check_output(bad, p)
    check_output(run / "exports" / "edited.ply", p)


def test_os_errors_become_one_line(tmp_path):
    with pytest.raises(CosegError, match=r"out\.ply: cannot write \(read-only file system\)"):
        with os_errors(tmp_path / "out.ply"):
            raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "out.ply"))
