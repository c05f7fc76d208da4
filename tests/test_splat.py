"""The .splat exporter/reader: byte layout, order, quantisation."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from coseg.errors import InputError
from coseg.gaussians import SH_C0, Gaussians
from coseg.io.splat import read_splat, write_splat


def _two_gaussians() -> Gaussians:
    f = lambda *rows: np.array(rows, np.float32)  # noqa: E731
    return Gaussians(
        means=f([1.0, -2.0, 0.5], [0.0, 0.0, 0.0]),
        quats=f([2.0, 0.0, 0.0, 0.0], [1.0, -1.0, 1.0, -1.0]),
        log_scales=f([np.log(2.0), 0.0, np.log(0.5)], [0.0, 0.0, 0.0]),
        opacity_logits=f(np.log(0.25), np.log(3.0)),          # opacities 0.2 and 0.75
        sh_dc=f([10.0, -10.0, (0.2 - 0.5) / SH_C0], [(0.6 - 0.5) / SH_C0] * 3),
        sh_rest=np.ones((2, 3, 3), np.float32),               # degree 1: dropped by .splat
        segments=np.array([4, 5], np.int32),
    )


def test_splat_byte_layout(tmp_path):
    write_splat(_two_gaussians(), tmp_path / "s.splat")
    data = (tmp_path / "s.splat").read_bytes()
    assert len(data) == 64
    # second Gaussian first: scale product 1 * opacity 0.75 > 1 * 0.2
    first = struct.pack("<3f3f4B4B", 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 153, 153, 153, 191, 192, 64, 192, 64)
    second = struct.pack("<3f3f4B4B", 1.0, -2.0, 0.5, 2.0, 1.0, 0.5, 255, 0, 51, 51, 255, 128, 128, 128)
    assert data[:32] == first
    assert data[32:] == second


def test_splat_read_back(tmp_path):
    write_splat(_two_gaussians(), tmp_path / "s.splat")
    g = read_splat(tmp_path / "s.splat")
    assert len(g) == 2 and g.sh_degree == 0 and g.segments is None
    np.testing.assert_array_equal(g.means, [[0, 0, 0], [1, -2, 0.5]])
    np.testing.assert_allclose(g.scales, [[1, 1, 1], [2, 1, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(g.opacities, [191 / 255, 51 / 255], rtol=1e-5)
    np.testing.assert_allclose(g.colors[1], [1.0, 0.0, 0.2], atol=1e-6)
    np.testing.assert_allclose(g.quats[0], [0.5, -0.5, 0.5, -0.5])
    np.testing.assert_allclose(g.quats[1], [127 / 128, 0, 0, 0])


def test_splat_order_is_by_size_times_opacity(tmp_path):
    rng = np.random.default_rng(1)
    n = 50
    f = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    g = Gaussians(f(n, 3), f(n, 4), f(n, 3), f(n), f(n, 3), np.zeros((n, 0, 3), np.float32))
    write_splat(g, tmp_path / "r.splat")
    back = read_splat(tmp_path / "r.splat")
    order = np.argsort(-(np.prod(g.scales.astype(np.float64), axis=1) * g.opacities), kind="stable")
    np.testing.assert_array_equal(back.means, g.means[order])


def test_splat_bad_size(tmp_path):
    (tmp_path / "bad.splat").write_bytes(b"\0" * 33)
    with pytest.raises(InputError, match="bad.splat.*32-byte"):
        read_splat(tmp_path / "bad.splat")
    with pytest.raises(InputError, match="none.splat"):
        read_splat(tmp_path / "none.splat")


def test_exporter_plugins(tmp_path):
    from coseg.io.ply import read_ply_header
    from coseg.plugins import PluginRegistry
    from plugins import exporters

    reg = PluginRegistry()
    exporters.register(reg)
    assert reg.names("exporter") == ["ply", "ply-plain", "ply-compressed", "spz", "splat"]
    g = _two_gaussians()
    for name in reg.names("exporter"):
        exp = reg.get("exporter", name)
        exp.export(g, tmp_path / f"{name}{exp.suffix}")
    props = lambda p: [n for n, _ in read_ply_header(p).element("vertex").properties]  # noqa: E731
    assert props(tmp_path / "ply.ply")[-1] == "segment"
    assert "segment" not in props(tmp_path / "ply-plain.ply")
    reg.get("exporter", "ply").export(g, tmp_path / "noseg.ply", with_segments=False)
    assert "segment" not in props(tmp_path / "noseg.ply")
    assert (tmp_path / "splat.splat").stat().st_size == 64
