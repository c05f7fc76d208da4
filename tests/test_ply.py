"""PLY reading/writing: point clouds and 3DGS Gaussian PLYs."""

from __future__ import annotations

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from coseg.errors import InputError
from coseg.gaussians import Gaussians, sh_dc_to_rgb
from coseg.io.ply import (read_gaussians_ply, read_ply_header, read_point_cloud, write_gaussians_ply,
                          write_point_cloud)

OFFICIAL = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
TAIL = ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


def _official_names(rest: int) -> list[str]:
    return OFFICIAL + [f"f_rest_{i}" for i in range(rest)] + TAIL


def _random_gaussians(n=20, degree=3, seed=0, segments=True) -> Gaussians:
    rng = np.random.default_rng(seed)
    k = (degree + 1) ** 2 - 1
    f = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    return Gaussians(means=f(n, 3), quats=f(n, 4), log_scales=f(n, 3), opacity_logits=f(n),
                     sh_dc=f(n, 3), sh_rest=f(n, k, 3),
                     segments=rng.integers(-1, 9, n).astype(np.int32) if segments else None)


def _inria_arrays(g: Gaussians, normals=True, dtype=np.float32) -> dict[str, np.ndarray]:
    """The properties the official 3DGS save_ply writes for `g`, by name."""
    n, k = len(g), g.sh_rest.shape[1]
    cols = {"x": g.means[:, 0], "y": g.means[:, 1], "z": g.means[:, 2]}
    if normals:
        cols.update(nx=np.zeros(n), ny=np.zeros(n), nz=np.zeros(n))
    cols.update({f"f_dc_{c}": g.sh_dc[:, c] for c in range(3)})
    rest = g.sh_rest.transpose(0, 2, 1).reshape(n, 3 * k)  # channel-major, as 3DGS flattens it
    cols.update({f"f_rest_{i}": rest[:, i] for i in range(3 * k)})
    cols["opacity"] = g.opacity_logits
    cols.update({f"scale_{i}": g.log_scales[:, i] for i in range(3)})
    cols.update({f"rot_{i}": g.quats[:, i] for i in range(4)})
    return {k: np.asarray(v, dtype) for k, v in cols.items()}


def _assert_same(a: Gaussians, b: Gaussians, segments=True):
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert getattr(b, name).dtype == np.float32
    if segments:
        np.testing.assert_array_equal(a.segments, b.segments)


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
    (tmp_path / "d.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n"
                                     b"property float x\nend_header\n1 2\n")
    with pytest.raises(InputError, match="d.ply: PLY property 'x' appears twice"):
        read_point_cloud(tmp_path / "d.ply")
    (tmp_path / "e.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1\n"
                                     b"property quad x\nend_header\n")
    with pytest.raises(InputError, match="e.ply: malformed PLY header line 'property quad x'"):
        read_point_cloud(tmp_path / "e.ply")


# --------------------------------------------------------------- Gaussian PLY
def test_gaussian_round_trip_is_bit_exact_with_segments_and_extras(tmp_path):
    g = _random_gaussians()
    g.extra = {"zeta": np.linspace(0, 1, 20).astype(np.float32), "alpha_id": np.arange(20, dtype=np.uint8),
               "w64": np.full(20, 1 / 3, np.float64)}
    a, b = tmp_path / "a.ply", tmp_path / "b.ply"
    write_gaussians_ply(g, a)
    g2 = read_gaussians_ply(a)
    _assert_same(g, g2)
    assert list(g2.extra) == ["zeta", "alpha_id", "w64"]
    assert [v.dtype for v in g2.extra.values()] == [np.float32, np.uint8, np.float64]
    write_gaussians_ply(g2, b)
    assert a.read_bytes() == b.read_bytes()
    props = [p for p, _ in read_ply_header(a).element("vertex").properties]
    assert props == _official_names(45) + ["segment", "zeta", "alpha_id", "w64"]
    v = PlyData.read(str(a))["vertex"]   # an independent parser agrees on types and values
    assert v["segment"].dtype == np.int32 and v["alpha_id"].dtype == np.uint8
    np.testing.assert_array_equal(v["segment"], g.segments)
    np.testing.assert_array_equal(v["f_rest_44"], g.sh_rest[:, 14, 2])


def test_plain_layout_is_exactly_the_official_property_set(tmp_path):
    g = _random_gaussians(degree=1)
    g.extra = {"foo": np.ones(20, np.float32)}
    write_gaussians_ply(g, tmp_path / "p.ply", layout="plain")
    v = PlyData.read(str(tmp_path / "p.ply"))["vertex"]
    assert [p.name for p in v.properties] == _official_names(9)
    assert all(p.val_dtype in ("f4", "float32", "float") for p in v.properties)
    # the same bytes as plyfile writes for the official layout (what 3DGS's save_ply does)
    _plyfile_write(tmp_path / "ref.ply", _inria_arrays(g))
    assert (tmp_path / "p.ply").read_bytes() == (tmp_path / "ref.ply").read_bytes()
    g2 = read_gaussians_ply(tmp_path / "p.ply")
    assert g2.segments is None and g2.extra == {}
    _assert_same(g, g2, segments=False)


def test_without_segments_option(tmp_path):
    write_gaussians_ply(_random_gaussians(degree=0), tmp_path / "a.ply", with_segments=False)
    assert read_gaussians_ply(tmp_path / "a.ply").segments is None


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_plyfile_inria_layout_and_sh_degree_inference(tmp_path, degree):
    g = _random_gaussians(n=7, degree=degree, seed=degree, segments=False)
    _plyfile_write(tmp_path / "g.ply", _inria_arrays(g))
    g2 = read_gaussians_ply(tmp_path / "g.ply")
    assert g2.sh_degree == degree and g2.sh_rest.shape == (7, (degree + 1) ** 2 - 1, 3)
    _assert_same(g, g2, segments=False)
    # channel-major: f_rest index = channel * K + coeff
    if degree:
        k = g.sh_rest.shape[1]
        v = PlyData.read(str(tmp_path / "g.ply"))["vertex"]
        assert g2.sh_rest[3, k - 1, 2] == v[f"f_rest_{2 * k + k - 1}"][3]


def test_bad_f_rest_count(tmp_path):
    g = _random_gaussians(n=3, degree=1, segments=False)
    cols = _inria_arrays(g)
    cols["f_rest_9"] = np.zeros(3, np.float32)
    _plyfile_write(tmp_path / "bad.ply", cols)
    with pytest.raises(InputError, match="bad.ply.*10 f_rest"):
        read_gaussians_ply(tmp_path / "bad.ply")


def test_gsplat_and_nerfstudio_variants(tmp_path):
    g = _random_gaussians(n=9, degree=2, segments=False)
    # gsplat export_splats: no normals
    cols = _inria_arrays(g, normals=False)
    _plyfile_write(tmp_path / "gsplat.ply", cols)
    _assert_same(g, read_gaussians_ply(tmp_path / "gsplat.ply"), segments=False)
    # shuffled order, doubles, unknown extras (kept in file order, types preserved)
    cols64 = _inria_arrays(g, dtype=np.float64)
    names = list(cols64)[::-1]
    mixed = {n: cols64[n] for n in names}
    mixed["seg_conf"] = np.arange(9, dtype=np.float32)
    mixed["segment"] = np.arange(9, dtype=np.float64)
    _plyfile_write(tmp_path / "mixed.ply", mixed)
    g2 = read_gaussians_ply(tmp_path / "mixed.ply")
    _assert_same(g, g2, segments=False)
    np.testing.assert_array_equal(g2.segments, np.arange(9))
    assert g2.segments.dtype == np.int32 and list(g2.extra) == ["seg_conf"]
    # nerfstudio ply_color_mode="rgb": uchar colours instead of f_dc, no f_rest
    rgb8 = np.array([0, 64, 128, 255, 1, 2, 3, 4, 5], np.uint8)
    ns = {k: v for k, v in _inria_arrays(g).items() if not k.startswith(("f_dc", "f_rest"))}
    ns = dict(list(ns.items())[:6] + [("red", rgb8), ("green", rgb8), ("blue", rgb8)] + list(ns.items())[6:])
    _plyfile_write(tmp_path / "ns.ply", ns)
    g3 = read_gaussians_ply(tmp_path / "ns.ply")
    assert g3.sh_degree == 0 and g3.extra == {}
    np.testing.assert_allclose(sh_dc_to_rgb(g3.sh_dc)[:, 1], rgb8 / 255.0, atol=1e-6)


def test_ascii_and_big_endian_gaussian_plys_are_accepted(tmp_path):
    g = _random_gaussians(n=4, degree=1, segments=False)
    _plyfile_write(tmp_path / "a.ply", _inria_arrays(g), text=True)
    _assert_same(g, read_gaussians_ply(tmp_path / "a.ply"), segments=False)
    _plyfile_write(tmp_path / "be.ply", _inria_arrays(g), byte_order=">")
    _assert_same(g, read_gaussians_ply(tmp_path / "be.ply"), segments=False)
    lines = (tmp_path / "a.ply").read_bytes().splitlines(keepends=True)
    (tmp_path / "short.ply").write_bytes(b"".join(lines[:-1]))
    with pytest.raises(InputError, match="short.ply: truncated or malformed ascii PLY"):
        read_gaussians_ply(tmp_path / "short.ply")


def test_non_integer_float_segments_are_rejected(tmp_path):
    cols = _inria_arrays(_random_gaussians(n=3, degree=0))
    cols["segment"] = np.array([1.0, 2.5, 3.0], np.float32)
    _plyfile_write(tmp_path / "s.ply", cols)
    with pytest.raises(InputError, match="s.ply: the segment property holds non-integer values"):
        read_gaussians_ply(tmp_path / "s.ply")


def test_gaussian_ply_errors(tmp_path):
    write_point_cloud(tmp_path / "pc.ply", np.zeros((5, 3)), np.zeros((5, 3)))
    with pytest.raises(InputError, match=r"pc.ply: not a 3DGS PLY \(it looks like a plain point cloud\)"
                                         r": missing vertex properties opacity, scale_0"):
        read_gaussians_ply(tmp_path / "pc.ply")
    write_gaussians_ply(_random_gaussians(n=5), tmp_path / "t.ply")
    data = (tmp_path / "t.ply").read_bytes()
    (tmp_path / "t.ply").write_bytes(data[:-1])
    with pytest.raises(InputError, match="t.ply: truncated"):
        read_gaussians_ply(tmp_path / "t.ply")
    (tmp_path / "t.ply").write_bytes(data[:200])
    with pytest.raises(InputError, match="t.ply: truncated"):
        read_gaussians_ply(tmp_path / "t.ply")
    (tmp_path / "x.ply").write_bytes(b"\x89PNG....")
    with pytest.raises(InputError, match="x.ply: not a PLY"):
        read_gaussians_ply(tmp_path / "x.ply")
    cols = _inria_arrays(_random_gaussians(n=2, degree=0))
    del cols["rot_3"]
    _plyfile_write(tmp_path / "r.ply", cols)
    with pytest.raises(InputError, match="r.ply: not a 3DGS PLY: missing vertex properties rot_3"):
        read_gaussians_ply(tmp_path / "r.ply")


def test_empty_model_round_trip(tmp_path):
    write_gaussians_ply(Gaussians.empty(2), tmp_path / "e.ply")
    g = read_gaussians_ply(tmp_path / "e.ply")
    assert len(g) == 0 and g.sh_degree == 2
