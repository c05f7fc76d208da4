"""Edit operations and the undo history (GUI-free)."""

import numpy as np
import pytest

from coseg.edit import EditDocument
from coseg.edit.ops import matrix_to_quat, parse_color, quat_multiply, rotation_matrix_xyz
from coseg.edit.sh_rotation import sh_basis
from coseg.gaussians import Gaussians


def _quat_to_matrix(q):
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def _random_gaussians(n=40, degree=3, seed=0, segments=(0, 1, 2)):
    rng = np.random.default_rng(seed)
    k = (degree + 1) ** 2 - 1
    return Gaussians(
        means=rng.normal(size=(n, 3)).astype(np.float32),
        quats=rng.normal(size=(n, 4)).astype(np.float32),
        log_scales=rng.normal(-3, 0.3, size=(n, 3)).astype(np.float32),
        opacity_logits=rng.normal(size=n).astype(np.float32),
        sh_dc=rng.normal(0, 0.5, size=(n, 3)).astype(np.float32),
        sh_rest=rng.normal(0, 0.1, size=(n, k, 3)).astype(np.float32),
        segments=rng.choice(segments, n).astype(np.int32),
    )


def _sh_color(dc, rest, d):
    basis = sh_basis(d[None, :], 3)[0]
    return 0.28209479177387814 * dc + basis @ rest


def test_rotation_transforms_means_quats_and_sh():
    g = _random_gaussians()
    doc = EditDocument(g)
    rows = doc.rows_of(1)
    c = g.means[rows].astype(np.float64).mean(0)
    doc.rotate([1], (30.0, -45.0, 10.0))
    R = rotation_matrix_xyz((30.0, -45.0, 10.0))
    new = doc.gaussians
    np.testing.assert_allclose(new.means[rows], (g.means[rows] - c) @ R.T + c, atol=1e-5)
    for i in rows[:5]:
        # Orientation: the Gaussian's rotation matrix is pre-multiplied by R.
        np.testing.assert_allclose(_quat_to_matrix(new.quats[i].astype(np.float64)),
                                   R @ _quat_to_matrix(g.quats[i].astype(np.float64)), atol=1e-5)
        # Colour seen from R·d after the edit equals the colour from d before it.
        for d in np.random.default_rng(int(i)).normal(size=(4, 3)):
            d /= np.linalg.norm(d)
            before = _sh_color(g.sh_dc[i], g.sh_rest[i], d)
            after = _sh_color(new.sh_dc[i], new.sh_rest[i], R @ d)
            np.testing.assert_allclose(after, before, atol=1e-4)
    others = np.setdiff1d(np.arange(len(g)), rows)
    assert np.array_equal(new.means[others], g.means[others])


def test_translate_and_undo_redo_bit_exact():
    g = _random_gaussians()
    doc = EditDocument(g)
    doc.translate([0, 2], (0.5, -1.0, 2.0))
    rows = doc.rows_of([0, 2])
    np.testing.assert_allclose(doc.gaussians.means[rows], g.means[rows] + [0.5, -1.0, 2.0], atol=1e-6)
    doc.recolor([1], (1.0, 0.0, 0.0))
    doc.rotate([1], (0, 90, 0))
    assert doc.undo() and doc.undo() and doc.undo()
    for name in ("means", "quats", "sh_dc", "sh_rest", "log_scales", "opacity_logits"):
        assert getattr(doc.gaussians, name).tobytes() == getattr(g, name).tobytes(), name
    assert not doc.undo()
    assert doc.redo()
    np.testing.assert_allclose(doc.gaussians.means[rows], g.means[rows] + [0.5, -1.0, 2.0], atol=1e-6)


def test_delete_removes_exactly_that_segment_and_undo_restores():
    g = _random_gaussians()
    doc = EditDocument(g)
    doc.delete([1])
    out = doc.result()
    assert len(out) == int((g.segments != 1).sum())
    assert not (out.segments == 1).any()
    assert out.means.tobytes() == g.means[g.segments != 1].tobytes()
    doc.undo()
    assert doc.result().means.tobytes() == g.means.tobytes()


def test_group_makes_one_undo_step():
    g = _random_gaussians()
    doc = EditDocument(g)
    with doc.group("Drag"):
        for _ in range(10):
            doc.translate([0], (0.01, 0.0, 0.0))
    assert len(doc.ops) == 10
    doc.undo()
    assert doc.gaussians.means.tobytes() == g.means.tobytes()
    assert not doc.can_undo


def test_duplicate_adds_new_segment_and_undo_removes_it():
    g = _random_gaussians()
    doc = EditDocument(g)
    (new_id,) = doc.duplicate([2], offset=(1.0, 0.0, 0.0))
    assert new_id == 3
    src, dup = doc.rows_of(2), doc.rows_of(3)
    assert len(src) == len(dup)
    np.testing.assert_allclose(doc.gaussians.means[dup], doc.gaussians.means[src] + [1, 0, 0], atol=1e-6)
    doc.undo()
    assert len(doc.gaussians) == len(g) and doc.rows_of(3).size == 0


def test_recolor_keeps_relative_shading():
    g = _random_gaussians(degree=0)
    g.sh_dc[:] = ((np.linspace(0.2, 0.6, len(g))[:, None] * [1, 1, 1]) - 0.5) / 0.28209479177387814
    doc = EditDocument(g)
    rows = doc.rows_of([0, 1, 2])
    doc.recolor([0, 1, 2], parse_color("#00ff00"))
    rgb = 0.5 + 0.28209479177387814 * doc.gaussians.sh_dc[rows]
    assert np.all(rgb[:, 0] < 1e-5) and np.all(rgb[:, 2] < 1e-5)
    # Brightness order is kept: brighter before -> brighter after.
    before = (0.5 + 0.28209479177387814 * g.sh_dc[rows])[:, 0]
    order = np.argsort(before)
    assert np.all(np.diff(rgb[order, 1]) >= -1e-6)


def test_replay_reproduces_the_same_scene():
    g = _random_gaussians()
    doc = EditDocument(g)
    doc.translate([0], (0.1, 0.2, 0.3))
    doc.rotate([1], (10, 20, 30))
    doc.recolor([2], (0.2, 0.4, 0.6))
    doc.duplicate([1])
    doc.delete([0])
    other = EditDocument(g)
    other.replay(doc.ops)
    assert other.result().means.tobytes() == doc.result().means.tobytes()
    assert other.result().sh_rest.tobytes() == doc.result().sh_rest.tobytes()


def test_listeners_hear_changed_rows():
    doc = EditDocument(_random_gaussians())
    heard = []
    doc.changed.connect(heard.append)
    doc.translate([1], (1, 0, 0))
    assert np.array_equal(heard[-1], doc.rows_of(1))
    doc.undo()
    assert np.array_equal(heard[-1], doc.rows_of(1))   # an undo names the rows it restored
    doc.duplicate([1])
    doc.undo()
    assert heard[-1] is None                            # ... all rows when the row count changes


def test_quaternion_helpers_roundtrip():
    R = rotation_matrix_xyz((12, -70, 133))
    q = matrix_to_quat(R)
    np.testing.assert_allclose(_quat_to_matrix(q), R, atol=1e-12)
    ident = quat_multiply(q, q * [1, -1, -1, -1])
    np.testing.assert_allclose(ident, [1, 0, 0, 0], atol=1e-12)


@pytest.mark.parametrize("text,expected", [("#ff8000", (1.0, 128 / 255, 0.0)), ("0,0.5,1", (0, 0.5, 1)),
                                           ("255,0,0", (1, 0, 0))])
def test_parse_color(text, expected):
    np.testing.assert_allclose(parse_color(text), expected)


def test_parse_color_rejects_garbage():
    with pytest.raises(ValueError, match="not '#rrggbb'"):
        parse_color("blue")
