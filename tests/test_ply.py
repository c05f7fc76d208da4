"""PLY reading/writing: point clouds and 3DGS Gaussian PLYs."""

from __future__ import annotations

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from coseg.errors import InputError
from coseg.io.ply import read_point_cloud, write_point_cloud


def _plyfile_write(path, arrays: dict[str, np.ndarray], text=False, byte_order="<"):
    dtype = [(k, v.dtype.str) for k, v in arrays.items()]
    n = len(next(iter(arrays.values())))
    v = np.empty(n, dtype=dtype)
    for k, a in arrays.items():
        v[k] = a
    PlyData([PlyElement.describe(v, "vertex")], text=text, byte_order=byte_order).write(str(path))


# ---------------------------------------------------------------- point clouds
def test_point_cloud_round_trip_and_plyfile_agrees(tmp_path):
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(50, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(50, 3)) / 255.0
    path = tmp_path / "points3d.ply"
    write_point_cloud(path, xyz, rgb)
    v = PlyData.read(str(path))["vertex"]
    assert [p.name for p in v.properties] == ["x", "y", "z", "red", "green", "blue"]
    assert v["red"].dtype == np.uint8
    np.testing.assert_array_equal(v["red"], np.round(rgb[:, 0] * 255).astype(np.uint8))
    xyz2, rgb2 = read_point_cloud(path)
    np.testing.assert_array_equal(xyz2, xyz)
    np.testing.assert_allclose(rgb2, rgb, atol=1e-6)
    assert xyz2.dtype == np.float32 and rgb2.dtype == np.float32


def test_point_cloud_without_colour(tmp_path):
    xyz = np.arange(12, dtype=np.float32).reshape(4, 3)
    write_point_cloud(tmp_path / "p.ply", xyz)
    xyz2, rgb2 = read_point_cloud(tmp_path / "p.ply")
    np.testing.assert_array_equal(xyz2, xyz)
    assert rgb2 is None


@pytest.mark.parametrize("text,byte_order", [(True, "="), (False, ">"), (False, "<")])
def test_point_cloud_ascii_big_endian_and_float_colours(tmp_path, text, byte_order):
    xyz = np.array([[1.5, -2.0, 3.25], [0.0, 1e-3, -7.0]], np.float64)
    cols = {"red": np.array([0.25, 1.0], np.float32), "green": np.array([0.5, 0.0], np.float32),
            "blue": np.array([0.75, 0.125], np.float32)}
    path = tmp_path / "p.ply"
    _plyfile_write(path, {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], **cols},
                   text=text, byte_order=byte_order)
    got_xyz, got_rgb = read_point_cloud(path)
    np.testing.assert_allclose(got_xyz, xyz.astype(np.float32))
    np.testing.assert_allclose(got_rgb, np.stack(list(cols.values()), 1))


def test_point_cloud_with_faces_after_vertices(tmp_path):
    xyz = np.eye(3, dtype=np.float32)
    v = np.array([tuple(r) for r in xyz], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    f = np.array([([0, 1, 2],)], dtype=[("vertex_indices", "i4", (3,))])
    PlyData([PlyElement.describe(v, "vertex"), PlyElement.describe(f, "face")]).write(
        str(tmp_path / "m.ply"))
    got, rgb = read_point_cloud(tmp_path / "m.ply")
    np.testing.assert_array_equal(got, xyz)
    assert rgb is None


def test_point_cloud_errors(tmp_path):
    (tmp_path / "a.ply").write_bytes(b"not a ply at all")
    with pytest.raises(InputError, match="a.ply.*not a PLY"):
        read_point_cloud(tmp_path / "a.ply")
    write_point_cloud(tmp_path / "b.ply", np.zeros((10, 3), np.float32))
    data = (tmp_path / "b.ply").read_bytes()
    (tmp_path / "b.ply").write_bytes(data[:-5])
    with pytest.raises(InputError, match="b.ply.*truncated"):
        read_point_cloud(tmp_path / "b.ply")
    with pytest.raises(InputError, match="missing.ply"):
        read_point_cloud(tmp_path / "missing.ply")
