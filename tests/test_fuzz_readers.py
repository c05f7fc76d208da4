"""Fuzzing the readers (docs/data-safety.md): random bytes and random valid-but-extreme headers
to the PLY, .splat, transforms.json, COLMAP and label-map readers.

Every input must give a correct load or one clean `CosegError` line, never
another exception. The CI profile is derandomised (the same examples every
run); ``HYPOTHESIS_PROFILE=fuzz`` explores many more at random.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from coseg.errors import CosegError
from coseg.io.colmap import CAMERA_MODELS, read_model
from coseg.io.images import read_id_map
from coseg.io.ply import PLY_TYPES, read_gaussians_ply, read_point_cloud, write_vertices
from coseg.io.splat import SPLAT_DTYPE, read_splat
from coseg.readers import read_scene

settings.register_profile("ci", max_examples=60, deadline=None, database=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("fuzz", max_examples=int(os.environ.get("COSEG_FUZZ_EXAMPLES", 2000)), deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_ROOT = Path(tempfile.mkdtemp(prefix="coseg-fuzz-"))


def _folder() -> Path:
    return Path(tempfile.mkdtemp(dir=_ROOT))


def _clean(read, *args):
    """Run a reader: its result, or None after one clean CosegError line. Anything else fails the test."""
    try:
        return read(*args)
    except CosegError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        return None


# ---------------------------------------------------------------- values
EXTREME_FLOATS = st.one_of(
    st.floats(width=32), st.floats(),
    st.sampled_from([0.0, -0.0, 1e-45, 1e-320, 3.4e38, -3.4e38, 1e308, -1e308, math.inf, -math.inf, math.nan]))
EXTREME_INTS = st.one_of(st.integers(-5, 40), st.sampled_from([0, 1, 2 ** 31 - 1, 2 ** 32, 2 ** 40, 2 ** 62]))
EXTREME_NUMBERS = st.one_of(EXTREME_FLOATS, EXTREME_INTS, st.integers(-(2 ** 70), 2 ** 70))

# ---------------------------------------------------------------- PLY
_GAUSSIAN_NAMES = ["x", "y", "z", "nx", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
                   "rot_0", "rot_1", "rot_2", "rot_3", "segment", "red", "green", "blue", "f_rest_0", "f_rest_1",
                   "packed_position", "foo"]


@st.composite
def _ply_header(draw) -> tuple[str, list]:
    fmt = draw(st.sampled_from(["ascii", "binary_little_endian", "binary_big_endian", "binary_middle_endian"]))
    lines, elements = ["ply", f"format {fmt} 1.0"], []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["vertex", "vertex", "face", "edge"]))
        count = draw(EXTREME_INTS.filter(lambda n: n >= 0))
        lines.append(f"element {name} {count}")
        props = []
        for _ in range(draw(st.integers(0, 16))):
            if draw(st.integers(0, 9)) == 0:
                lines.append("property list uchar int vertex_indices")
                props.append(("vertex_indices", "list"))
            else:
                ptype, pname = draw(st.sampled_from(sorted(PLY_TYPES))), draw(st.sampled_from(_GAUSSIAN_NAMES))
                lines.append(f"property {ptype} {pname}")
                props.append((pname, PLY_TYPES[ptype]))
        elements.append((count, props))
    if draw(st.booleans()):
        lines.insert(draw(st.integers(1, len(lines))), draw(st.sampled_from(
            ["comment made by hand", "obj_info x", "element", "property float", "property int8 x y",
             "element vertex -1", "element vertex 1e3", "format binary_little_endian", "bogus line"])))
    lines.append("end_header")
    return "\n".join(lines) + "\n", elements


@st.composite
def ply_files(draw) -> bytes:
    header, elements = draw(_ply_header())
    if draw(st.booleans()):
        return header.encode() + draw(st.binary(max_size=3000))
    if "ascii" in header:
        rows = [" ".join(draw(st.sampled_from(["0", "1", "-1", "2.5", "nan", "inf", "-inf", "1e400", "255",
                                                "65536", "x", "3"])) for _ in range(draw(st.integers(0, 18))))
                for _ in range(draw(st.integers(0, 12)))]
        return header.encode() + "\n".join(rows).encode()
    floats = draw(st.lists(st.floats(width=32), max_size=400))
    return header.encode() + np.array(floats, "<f4").tobytes()


@given(st.one_of(st.binary(max_size=2000), st.binary(max_size=500).map(lambda b: b"ply\n" + b), ply_files()))
def test_ply_readers_give_a_load_or_one_clean_error(data):
    path = _folder() / "fuzz.ply"
    path.write_bytes(data)
    g = _clean(read_gaussians_ply, path)
    if g is not None:
        assert g.finite_mask().all()
    _clean(read_point_cloud, path)


@given(st.integers(0, 25), st.sampled_from([0, 9, 24, 45]), st.data())
def test_a_valid_gaussian_ply_with_extreme_values_loads_its_finite_gaussians(n, rest, data):
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", *(f"f_rest_{i}" for i in range(rest)), "opacity",
             "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    values = np.array(data.draw(st.lists(st.lists(EXTREME_FLOATS, min_size=len(names), max_size=len(names)),
                                         min_size=n, max_size=n)), np.float64).reshape(n, len(names))
    v = np.empty(n, [(name, "<f4") for name in names])
    with np.errstate(over="ignore"):  # float64 extremes become float32 inf: that is the point
        for i, name in enumerate(names):
            v[name] = values[:, i]
    path = _folder() / "g.ply"
    write_vertices(path, v)
    g = read_gaussians_ply(path)
    finite = np.isfinite(v.view(np.float32).reshape(n, len(names))).all(axis=1) if n else np.zeros(0, bool)
    assert len(g) == int(finite.sum())
    np.testing.assert_array_equal(g.means, np.stack([v["x"], v["y"], v["z"]], 1)[finite])


# ---------------------------------------------------------------- .splat
@given(st.one_of(st.binary(max_size=32 * 20),
                 st.lists(st.floats(width=32), min_size=8, max_size=8 * 12).map(
                     lambda f: np.array(f[:len(f) // 8 * 8], "<f4").tobytes())))
def test_splat_reader_gives_a_load_or_one_clean_error(data):
    path = _folder() / "fuzz.splat"
    path.write_bytes(data)
    g = _clean(read_splat, path)
    if g is not None:
        assert len(data) % SPLAT_DTYPE.itemsize == 0 and g.finite_mask().all()


# ---------------------------------------------------------------- transforms.json
def _images(root: Path) -> None:
    from PIL import Image

    (root / "images").mkdir(parents=True)
    for name in ("a", "b"):
        Image.new("RGB", (8, 6), (10, 200, 30)).save(root / "images" / f"{name}.png")


_JSON = st.recursive(st.none() | st.booleans() | EXTREME_NUMBERS | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                     max_leaves=24)
_MATRICES = st.one_of(
    st.lists(st.lists(EXTREME_NUMBERS, min_size=4, max_size=4), min_size=3, max_size=4),
    st.lists(st.lists(EXTREME_NUMBERS, max_size=5), max_size=5), _JSON)
_FILE_PATHS = st.sampled_from(["images/a", "images/a.png", "./images/b", "images/missing", "", "/", "images",
                               "images/a\x00", "../images/a", 3, None, ["images/a"]])


def _good_or(good, *extremes):
    """A plausible value about half the time, else an extreme one, so that the other fields of a
    case stay valid often enough for a reader to get as far as the extreme one."""
    return st.one_of(st.just(good), *extremes)


def _good_matrix(tx: float = 0.0) -> list:
    return [[1, 0, 0, tx], [0, 1, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1]]


@st.composite
def _matrices(draw) -> list:
    """A good pose, one with an extreme entry, or any nesting of numbers."""
    m = _good_matrix(draw(st.sampled_from([0.0, 1.0, -2.0])))
    kind = draw(st.integers(0, 2))
    if kind == 1:
        m[draw(st.integers(0, 3))][draw(st.integers(0, 3))] = draw(EXTREME_NUMBERS)
    return m if kind < 2 else draw(_MATRICES)


@st.composite
def transforms(draw) -> dict:
    """A transforms.json of the right shape with plausible or extreme values."""
    number = lambda good: _good_or(good, EXTREME_NUMBERS, st.text(max_size=3), _JSON)  # noqa: E731
    meta = {"camera_angle_x": draw(number(0.9))} if draw(st.booleans()) else {"fl_x": draw(number(8.0))}
    for key, good in (("fl_y", 8.0), ("camera_angle_y", 0.7), ("cx", 4.0), ("cy", 3.0), ("w", 8), ("h", 6),
                      ("k1", 0.0), ("p2", 0.0), ("camera_model", "OPENCV")):
        if draw(st.integers(0, 3)) == 0:
            meta[key] = draw(number(good))
    frames = []
    for name in draw(st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=3)):
        frame = {"file_path": draw(_good_or(f"images/{name}", _FILE_PATHS)), "transform_matrix": draw(_matrices())}
        if draw(st.integers(0, 3)) == 0:
            frame[draw(st.sampled_from(["fl_x", "w", "camera_angle_x", "k1"]))] = draw(number(1.0))
        frames.append(frame)
    meta["frames"] = frames
    return meta


def _one_frame(path="images/a", **meta) -> dict:
    return {**meta, "frames": [{"file_path": path, "transform_matrix": _good_matrix()}]}


@given(st.one_of(transforms(), transforms(), transforms(), _JSON),
       st.sampled_from(["transforms.json", "transforms_train.json"]))
@example(_one_frame(camera_angle_x=0), "transforms.json")  # each of these crashed before issue 11
@example(_one_frame(camera_angle_x=math.inf), "transforms.json")
@example(_one_frame(camera_angle_x=1.0, w=math.inf, h=6), "transforms.json")
@example(_one_frame(fl_x=10 ** 400), "transforms.json")
@example(_one_frame("/", camera_angle_x=1.0), "transforms.json")
@example(_one_frame("images/a\x00", camera_angle_x=1.0), "transforms.json")
def test_transforms_json_reader_gives_a_load_or_one_clean_error(meta, name):
    root = _folder()
    _images(root)
    (root / name).write_text(json.dumps(meta, allow_nan=True))
    scene = _clean(read_scene, root)
    if scene is not None:
        assert all(np.isfinite(c.world_to_camera).all() and c.fx > 0 and c.width > 0 for c in scene.cameras)


def test_a_plain_transforms_json_loads():
    root = _folder()
    _images(root)
    frames = [{"file_path": f"images/{n}", "transform_matrix": _good_matrix(i)} for i, n in enumerate("ab")]
    (root / "transforms.json").write_text(json.dumps({"camera_angle_x": 1.0, "frames": frames}))
    scene = read_scene(root)
    assert [c.name for c in scene.cameras] == ["a", "b"] and scene.cameras[0].width == 8


# ---------------------------------------------------------------- COLMAP
_GOOD_PARAMS = {0: [8.0, 4.0, 3.0], 1: [8.0, 8.0, 4.0, 3.0], 2: [8.0, 4.0, 3.0, 0.0], 4: [8.0, 8.0, 4.0, 3.0] + [0.0] * 4}


@st.composite
def _colmap_camera(draw) -> tuple[int, int, int, list[float]]:
    """(model id, width, height, params): a pinhole or distorted camera, with some value extreme."""
    model = draw(_good_or(1, st.sampled_from([0, 2, 4]), st.integers(-1, 14)))
    n = CAMERA_MODELS.get(model, ("", draw(st.integers(0, 4))))[1]
    params = list(_GOOD_PARAMS.get(model, [8.0] * n))[:n] + [0.0] * max(0, n - len(_GOOD_PARAMS.get(model, [])))
    if draw(st.booleans()) and n:
        params[draw(st.integers(0, n - 1))] = draw(EXTREME_FLOATS)
    width = draw(_good_or(8, EXTREME_INTS.filter(lambda v: 0 <= v < 2 ** 63)))
    height = draw(_good_or(6, st.integers(0, 2 ** 16)))
    return model, width, height, params


@st.composite
def _colmap_pose(draw) -> tuple[list[float], list[float]]:
    qvec = draw(st.sampled_from([[1.0, 0, 0, 0], [0.0, 0, 0, 0], [0.5, 0.5, 0.5, 0.5], [1e-300, 0, 0, 0]]) |
                st.lists(EXTREME_FLOATS, min_size=4, max_size=4))
    tvec = draw(st.just([0.0, 0.0, 3.0]) | st.lists(EXTREME_FLOATS, min_size=3, max_size=3))
    return qvec, tvec


@st.composite
def colmap_binary(draw) -> dict[str, bytes]:
    """cameras.bin / images.bin (/ points3D.bin) with plausible or extreme records, counts and lengths."""
    cams = b""
    n_cams = draw(st.integers(0, 2))
    for cid in range(1, n_cams + 1):
        model, width, height, params = draw(_colmap_camera())
        cams += struct.pack("<iiQQ", cid, model, width, height) + struct.pack(f"<{len(params)}d", *params)
    images = b""
    names = draw(st.lists(_good_or(b"a.png", st.sampled_from([b"b.png", b"missing.png", b"", b"../a.png",
                                                                b"\xff\xfe"])), max_size=3))
    for iid, name in enumerate(names, 1):
        qvec, tvec = draw(_colmap_pose())
        points = draw(st.integers(0, 2))
        images += struct.pack("<i7di", iid, *qvec, *tvec, draw(_good_or(1, st.integers(0, 4)))) + name + b"\0"
        images += struct.pack("<Q", draw(_good_or(points, st.just(2 ** 40)))) + b"\0" * 24 * points
    count = lambda n: struct.pack("<Q", draw(_good_or(n, st.sampled_from([n + 1, 2 ** 60]))))  # noqa: E731
    out = {"cameras.bin": count(n_cams) + cams, "images.bin": count(len(names)) + images}
    if draw(st.booleans()):
        out["points3D.bin"] = count(1) + struct.pack("<Q3d3BdQ", 1, *draw(st.lists(EXTREME_FLOATS, min_size=3,
                                                                                    max_size=3)), 1, 2, 3, 0.5,
                                                     draw(_good_or(0, st.just(2 ** 50))))
    for name in list(out):
        if draw(st.integers(0, 5)) == 0:  # truncated, or noise
            out[name] = out[name][:draw(st.integers(0, len(out[name])))] + draw(st.binary(max_size=8))
    return out


@st.composite
def colmap_text(draw) -> dict[str, bytes]:
    """cameras.txt / images.txt (/ points3D.txt): plausible lines with extreme tokens, or token soup."""
    token = st.one_of(st.sampled_from(["1", "2", "0", "-1", "PINHOLE", "SIMPLE_RADIAL", "OPENCV", "FOO", "8", "6",
                                       "4.0", "nan", "inf", "1e400", "a.png", "b.png", "#", "x"]),
                      EXTREME_NUMBERS.map(str))
    soup = st.lists(st.lists(token, max_size=12).map(" ".join), max_size=6).map("\n".join)
    model, width, height, params = draw(_colmap_camera())
    name = CAMERA_MODELS.get(model, ("FOO", 0))[0]
    cameras = f"1 {name} {width} {height} {' '.join(map(repr, params))}"
    qvec, tvec = draw(_colmap_pose())
    images = f"1 {' '.join(map(repr, qvec + tvec))} {draw(_good_or(1, st.integers(0, 3)))} a.png\n\n"
    files = {"cameras.txt": draw(_good_or(cameras, soup)), "images.txt": draw(_good_or(images, soup))}
    if draw(st.booleans()):
        files["points3D.txt"] = draw(_good_or("1 0 0 1 10 20 30 0.5\n", soup))
    return {k: v.encode() for k, v in files.items()}


@given(st.one_of(colmap_binary(), colmap_text()))
@example({"cameras.txt": b"1 PINHOLE 8 6 8 8 4 3", "images.txt": b"1 0 0 0 0 0 0 3 1 a.png\n\n"})  # zero quaternion
@example({"cameras.txt": b"1 PINHOLE 8 6 8 8 4 3", "images.txt": b"1 1e308 1e308 0 0 0 0 3 1 a.png\n\n"})
def test_colmap_readers_give_a_load_or_one_clean_error(files):
    root = _folder()
    _images(root)
    model = root / "sparse" / "0"
    model.mkdir(parents=True)
    for name, data in files.items():
        (model / name).write_bytes(data)
    _clean(read_model, model)
    scene = _clean(read_scene, root)
    if scene is not None:
        assert all(np.isfinite(c.world_to_camera).all() and c.fx > 0 for c in scene.cameras)


# ---------------------------------------------------------------- label maps
@st.composite
def label_pngs(draw) -> tuple[bytes, tuple[int, int], np.ndarray | None]:
    """(file bytes, the size asked for, the ids a correct load gives or None)."""
    import io

    from PIL import Image

    if draw(st.integers(0, 3)) == 0:
        return draw(st.binary(max_size=300)), (4, 4), None
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    mode = draw(st.sampled_from(["L", "P", "I;16", "RGB", "RGBA", "1", "LA"]))
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    if mode in ("L", "P"):
        ids = rng.integers(0, 256, (h, w), dtype=np.uint8)
        im = Image.frombytes(mode, (w, h), ids.tobytes())
        if mode == "P":
            im.putpalette(list(rng.integers(0, 256, 768)))
    elif mode == "I;16":
        ids = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        im = Image.frombytes(mode, (w, h), ids.tobytes())
    else:
        ids = None
        channels = {"RGB": 3, "RGBA": 4, "1": 1, "LA": 2}[mode]
        im = Image.frombytes(mode, (w, h), rng.integers(0, 256, w * h * channels, dtype=np.uint8).tobytes()) \
            if mode != "1" else Image.fromarray(rng.integers(0, 2, (h, w)).astype(bool))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    data = buf.getvalue()
    if draw(st.integers(0, 4)) == 0:
        data = data[:draw(st.integers(0, len(data)))]
        ids = None
    size = (h, w) if draw(st.booleans()) else (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    return data, size, ids if size == (h, w) else None


@given(label_pngs())
def test_label_map_reader_gives_a_load_or_one_clean_error(case):
    data, size, expected = case
    path = _folder() / "label.png"
    path.write_bytes(data)
    ids = _clean(read_id_map, path, size)
    if expected is not None:
        np.testing.assert_array_equal(ids, expected)
    if ids is not None:
        assert ids.shape == size and ids.dtype == np.int32


@pytest.fixture(scope="module", autouse=True)
def _remove_fuzz_files():
    yield
    import shutil

    shutil.rmtree(_ROOT, ignore_errors=True)
