"""PLY input/output: point clouds (``points3d.ply``) and 3DGS Gaussian PLYs.

A small hand-written header parser (no plyfile at run time) turns the header
into a numpy structured dtype, so a binary body is read in one call with no
per-vertex Python work. Binary little- and big-endian and ascii bodies are
read; everything is written binary little-endian, atomically.

Only the ``vertex`` element is read. Elements before it must have fixed-size
rows in a binary file (list properties such as mesh faces may only follow the
vertex element); elements after it are ignored.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coseg.errors import InputError
from coseg.io.atomic import atomic_open

log = logging.getLogger(__name__)

#: PLY scalar type name -> numpy type code (both the old and the sized names).
PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
#: numpy type code -> the PLY name we write.
_PLY_NAMES = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int",
              "u4": "uint", "f4": "float", "f8": "double"}
_FORMATS = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "ascii"}
_MAX_HEADER_BYTES = 1 << 20


@dataclass
class PlyElement:
    """One ``element`` of a PLY header.

    Attributes:
        name: element name, e.g. "vertex".
        count: number of rows.
        properties: (name, numpy type code) per scalar property, in file order;
            a list property has type code "list".
    """

    name: str
    count: int
    properties: list[tuple[str, str]] = field(default_factory=list)

    def has_lists(self) -> bool:
        return any(t == "list" for _, t in self.properties)

    def dtype(self, byte_order: str) -> np.dtype:
        """Structured dtype of one row (scalar properties only)."""
        order = "<" if byte_order == "ascii" else byte_order
        return np.dtype([(n, order + t) for n, t in self.properties])


@dataclass
class PlyHeader:
    """A parsed PLY header: format ("<", ">" or "ascii"), elements, body offset."""

    byte_order: str
    elements: list[PlyElement]
    body_offset: int

    def element(self, name: str) -> PlyElement | None:
        return next((e for e in self.elements if e.name == name), None)


def read_ply_header(path: str | os.PathLike) -> PlyHeader:
    """Parse the header of the PLY file at `path`.

    Raises:
        InputError: the file is missing, not a PLY or has a malformed header.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(_MAX_HEADER_BYTES)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    if not head.startswith(b"ply"):
        raise InputError(f"{path}: not a PLY file (it does not start with 'ply')")
    end = head.find(b"end_header")
    if end < 0:
        raise InputError(f"{path}: truncated PLY header (no end_header line)")
    nl = head.find(b"\n", end)
    if nl < 0:
        raise InputError(f"{path}: truncated PLY file (nothing after end_header)")
    lines = head[:end].decode("ascii", errors="replace").splitlines()[1:]
    byte_order = None
    elements: list[PlyElement] = []
    for raw in lines:
        words = raw.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        bad = InputError(f"{path}: malformed PLY header line {raw.strip()!r}")
        if words[0] == "format":
            if len(words) < 2 or words[1] not in _FORMATS:
                raise InputError(f"{path}: unsupported PLY format {raw.strip()!r}")
            byte_order = _FORMATS[words[1]]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise bad
            elements.append(PlyElement(words[1], int(words[2])))
        elif words[0] == "property":
            if not elements:
                raise bad
            if len(words) == 5 and words[1] == "list":
                elements[-1].properties.append((words[4], "list"))
            elif len(words) == 3 and words[1] in PLY_TYPES:
                elements[-1].properties.append((words[2], PLY_TYPES[words[1]]))
            else:
                raise bad
            names = [n for n, _ in elements[-1].properties]
            if names.count(names[-1]) > 1:
                raise InputError(f"{path}: PLY property {names[-1]!r} appears twice in element "
                                 f"{elements[-1].name!r}")
        else:
            raise bad
    if byte_order is None:
        raise InputError(f"{path}: PLY header has no format line")
    return PlyHeader(byte_order, elements, nl + 1)


def read_vertices(path: str | os.PathLike) -> np.ndarray:
    """The ``vertex`` element of a PLY file as a structured array [N] (native order).

    Raises:
        InputError: not a PLY, no vertex element, or the body is truncated.
    """
    path = Path(path)
    header = read_ply_header(path)
    vertex = header.element("vertex")
    if vertex is None:
        raise InputError(f"{path}: PLY file has no vertex element")
    if vertex.has_lists():
        raise InputError(f"{path}: the PLY vertex element has list properties, which are not supported")
    before = header.elements[:header.elements.index(vertex)]
    if header.byte_order == "ascii":
        return _read_ascii_vertices(path, header, vertex, sum(e.count for e in before))
    if any(e.has_lists() for e in before):
        raise InputError(f"{path}: a PLY element with list properties precedes the vertex element")
    dtype = vertex.dtype(header.byte_order)
    offset = header.body_offset + sum(e.count * e.dtype(header.byte_order).itemsize for e in before)
    need = offset + vertex.count * dtype.itemsize
    size = path.stat().st_size
    if size < need:
        raise InputError(f"{path}: truncated PLY file ({size} bytes, the header needs at least {need})")
    with open(path, "rb") as f:
        f.seek(offset)
        data = np.fromfile(f, dtype=dtype, count=vertex.count)
    return data.astype(data.dtype.newbyteorder("=")) if header.byte_order == ">" else data


def _read_ascii_vertices(path: Path, header: PlyHeader, vertex: PlyElement, skip: int) -> np.ndarray:
    with open(path, "rb") as f:
        f.seek(header.body_offset)
        lines = f.read().decode("ascii", errors="replace").splitlines()
    rows = lines[skip:skip + vertex.count]
    nprop = len(vertex.properties)
    try:
        values = np.array(" ".join(rows).split(), dtype=np.float64)
    except ValueError:
        raise InputError(f"{path}: non-numeric value in the ascii PLY vertex data") from None
    if len(rows) < vertex.count or values.size != vertex.count * nprop:
        raise InputError(f"{path}: truncated or malformed ascii PLY "
                         f"(expected {vertex.count} vertices of {nprop} values)")
    values = values.reshape(vertex.count, nprop)
    out = np.empty(vertex.count, dtype=vertex.dtype("<").newbyteorder("="))
    for i, (name, _) in enumerate(vertex.properties):
        out[name] = values[:, i]
    return out


def write_vertices(path: str | os.PathLike, vertices: np.ndarray) -> None:
    """Write a structured array [N] as the vertex element of a binary little-endian PLY.

    Args:
        path: destination, written atomically.
        vertices: structured array whose fields are PLY scalar types.
    """
    fields = vertices.dtype.names or ()
    le = np.dtype([(n, "<" + vertices.dtype[n].str[1:]) for n in fields])
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {len(vertices)}"]
    for n in fields:
        code = le[n].str[1:]
        if code not in _PLY_NAMES:
            raise ValueError(f"PLY property {n!r} has unsupported type {le[n]}")
        lines.append(f"property {_PLY_NAMES[code]} {n}")
    lines.append("end_header")
    body = np.ascontiguousarray(vertices.astype(le, copy=False))
    with atomic_open(path, "wb") as f:
        f.write(("\n".join(lines) + "\n").encode("ascii"))
        f.write(body.view(np.uint8))


# ---------------------------------------------------------------- point clouds
def read_point_cloud(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a coloured point cloud such as COLMAP's / our ``points3d.ply``.

    Colours may be integer (``red green blue`` uchar/ushort, scaled by the type's
    maximum) or float (taken as [0, 1]); ``r g b`` names are accepted too.

    Returns:
        xyz [P, 3] float32 and rgb [P, 3] float32 in [0, 1], or None when the
        file has no colour properties.
    """
    v = read_vertices(path)
    names = v.dtype.names
    missing = [c for c in "xyz" if c not in names]
    if missing:
        raise InputError(f"{path}: PLY vertices lack {', '.join(missing)}")
    xyz = np.stack([v[c] for c in "xyz"], axis=1).astype(np.float32)
    rgb = None
    for cols in (("red", "green", "blue"), ("r", "g", "b")):
        if all(c in names for c in cols):
            kind = v.dtype[cols[0]]
            scale = float(np.iinfo(kind).max) if kind.kind in "iu" else 1.0
            rgb = np.clip(np.stack([v[c] for c in cols], axis=1).astype(np.float32) / np.float32(scale), 0.0, 1.0)
            break
    ok = np.isfinite(xyz).all(axis=1)
    if not ok.all():  # the same policy as for Gaussians: drop, say how many
        log.warning("%s: dropped %d of %d points with NaN or inf positions", path, int((~ok).sum()), len(ok))
        xyz, rgb = xyz[ok], None if rgb is None else rgb[ok]
    return xyz, rgb


def write_point_cloud(path: str | os.PathLike, xyz: np.ndarray, rgb: np.ndarray | None = None) -> None:
    """Write points (and colours) as binary little-endian PLY: x y z float, red green blue uchar.

    Args:
        path: destination, written atomically.
        xyz: [P, 3] positions.
        rgb: [P, 3] colours in [0, 1] (rounded to 8 bits), or None.
    """
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"xyz has shape {xyz.shape}, expected (P, 3)")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != xyz.shape:
            raise ValueError(f"rgb has shape {rgb.shape}, expected {xyz.shape}")
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    v = np.empty(len(xyz), dtype=fields)
    for i, c in enumerate("xyz"):
        v[c] = xyz[:, i]
    if rgb is not None:
        rgb8 = np.round(np.clip(rgb.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
        for i, c in enumerate(("red", "green", "blue")):
            v[c] = rgb8[:, i]
    write_vertices(path, v)


# ------------------------------------------------------------ 3DGS Gaussian PLY
_NORMALS = ("nx", "ny", "nz")
_DC = ("f_dc_0", "f_dc_1", "f_dc_2")
_SCALES = ("scale_0", "scale_1", "scale_2")
_ROTS = ("rot_0", "rot_1", "rot_2", "rot_3")
_REST_COUNTS = {0: 0, 9: 1, 24: 2, 45: 3}  # f_rest count -> SH degree
_RGB = ("red", "green", "blue")


def _inria_names(rest_count: int) -> list[str]:
    """The official 3DGS property order for `rest_count` f_rest properties."""
    return ["x", "y", "z", *_NORMALS, *_DC, *(f"f_rest_{i}" for i in range(rest_count)),
            "opacity", *_SCALES, *_ROTS]


def _float_block(v: np.ndarray, names: list[str]) -> np.ndarray:
    """Columns `names` of structured array `v` as a float32 array [N, len(names)].

    When the columns are consecutive native float32 fields (every 3DGS writer
    lays them out so) the result is a strided view into `v`, to be copied once
    by the caller; otherwise a new array filled field by field with conversion
    (e.g. from double).
    """
    dt = v.dtype
    start = dt.fields[names[0]][1]
    if all(dt[n] == np.float32 and dt.fields[n][1] == start + 4 * i for i, n in enumerate(names)):
        rows = v.view(np.uint8).reshape(len(v), dt.itemsize)
        return rows[:, start:start + 4 * len(names)].view(np.float32)
    out = np.empty((len(v), len(names)), np.float32)
    for i, n in enumerate(names):
        out[:, i] = v[n]
    return out


def _missing_message(path: Path, names: tuple[str, ...], missing: list[str]) -> str:
    shown = ", ".join(missing[:8]) + (", ..." if len(missing) > 8 else "")
    hint = " (it looks like a plain point cloud)" if "opacity" not in names else ""
    return f"{path}: not a 3DGS PLY{hint}: missing vertex properties {shown}"


def read_gaussians_ply(path: str | os.PathLike, keep_nonfinite: bool = False):
    """Read a 3D Gaussian Splatting PLY by property name.

    Accepts the files of the official 3DGS code, gsplat and nerfstudio: any
    property order, normals optional (ignored), float or double properties,
    binary (either byte order) or ascii; a PlayCanvas / SuperSplat compressed
    PLY (``chunk`` + packed ``vertex`` elements) is decoded by
    `coseg.io.compressed_ply.read_compressed_ply`. A file without ``f_dc_*`` but with
    ``red green blue`` (nerfstudio's rgb colour mode) gets its DC from the colours.
    The SH degree (0-3) follows from the f_rest count (0, 9, 24, 45; channel-major:
    ``f_rest_{c*K + k}`` is ``sh_rest[:, k, c]``). An optional ``segment``
    property gives `Gaussians.segments`; every other property we do not
    interpret is kept, with its type and order, in `Gaussians.extra`. Gaussians
    with NaN or inf parameters are dropped with one warning giving the count
    (`Gaussians.without_nonfinite`) unless `keep_nonfinite` (e.g. to count them).

    Returns:
        coseg.gaussians.Gaussians.

    Raises:
        InputError: not a PLY, truncated, not a 3DGS PLY or a bad f_rest count.
    """
    from coseg.gaussians import Gaussians, rgb_to_sh_dc

    path = Path(path)
    from coseg.io.compressed_ply import is_compressed_ply, read_compressed_ply

    if is_compressed_ply(read_ply_header(path)):
        g = read_compressed_ply(path)
        return g if keep_nonfinite else g.without_nonfinite(str(path))
    v = read_vertices(path)
    names = v.dtype.names or ()
    colour_from_rgb = not all(n in names for n in _DC) and all(n in names for n in _RGB)
    required = ["x", "y", "z", *([] if colour_from_rgb else _DC), "opacity", *_SCALES, *_ROTS]
    missing = [n for n in required if n not in names]
    if missing:
        raise InputError(_missing_message(path, names, missing))
    rest = [n for n in names if n.startswith("f_rest_")]
    if len(rest) not in _REST_COUNTS:
        raise InputError(f"{path}: {len(rest)} f_rest properties is not an SH degree 0-3 layout "
                         "(expected 0, 9, 24 or 45)")
    expected_rest = [f"f_rest_{i}" for i in range(len(rest))]
    if sorted(rest) != sorted(expected_rest):
        raise InputError(f"{path}: f_rest properties are not numbered f_rest_0..f_rest_{len(rest) - 1}")
    k = len(rest) // 3
    if colour_from_rgb:
        dc = rgb_to_sh_dc(_float_block(v, list(_RGB)) / np.float32(_colour_scale(v.dtype["red"])))
    else:
        dc = np.ascontiguousarray(_float_block(v, list(_DC)))
    sh_rest = (np.ascontiguousarray(_float_block(v, expected_rest).reshape(len(v), 3, k).transpose(0, 2, 1))
               if k else np.zeros((len(v), 0, 3), np.float32))
    interpreted = {"x", "y", "z", *_NORMALS, *_DC, *expected_rest, "opacity", *_SCALES, *_ROTS,
                   "segment", *(_RGB if colour_from_rgb else ())}
    g = Gaussians(
        means=np.ascontiguousarray(_float_block(v, ["x", "y", "z"])),
        quats=np.ascontiguousarray(_float_block(v, list(_ROTS))),
        log_scales=np.ascontiguousarray(_float_block(v, list(_SCALES))),
        opacity_logits=np.ascontiguousarray(_float_block(v, ["opacity"])[:, 0]),
        sh_dc=dc,
        sh_rest=sh_rest,
        segments=_read_segments(path, v) if "segment" in names else None,
        extra={n: np.ascontiguousarray(v[n]) for n in names if n not in interpreted},
    )
    return g if keep_nonfinite else g.without_nonfinite(str(path))


def _colour_scale(dtype: np.dtype) -> float:
    return float(np.iinfo(dtype).max) if dtype.kind in "iu" else 1.0


def _read_segments(path: Path, v: np.ndarray) -> np.ndarray:
    seg = v["segment"]
    if seg.dtype.kind == "f":
        if not (np.isfinite(seg).all() and (seg == np.round(seg)).all()):
            raise InputError(f"{path}: the segment property holds non-integer values")
    return seg.astype(np.int32)


def write_gaussians_ply(gaussians, path: str | os.PathLike, *, layout: str = "inria",
                        with_segments: bool = True) -> None:
    """Write Gaussians as a binary little-endian 3DGS PLY, atomically; NaN / inf values are refused.

    Args:
        gaussians: coseg.gaussians.Gaussians.
        path: destination.
        layout: "inria" writes the official property set and order (normals as
            zeros) followed by ``segment`` (int32, when present and
            `with_segments`) and the `extra` properties in their order; "plain"
            writes exactly the official property set, for viewers that reject
            anything else.
        with_segments: write the ``segment`` property (inria layout only).
    """
    if layout not in ("inria", "plain"):
        raise ValueError(f"unknown PLY layout {layout!r} (use 'inria' or 'plain')")
    g = gaussians
    g.check_writable(path)
    n, k = len(g), g.sh_rest.shape[1]
    core_names = _inria_names(3 * k)
    core = np.concatenate([
        g.means, np.zeros((n, 3), np.float32), g.sh_dc,
        g.sh_rest.transpose(0, 2, 1).reshape(n, 3 * k), g.opacity_logits[:, None],
        g.log_scales, g.quats], axis=1, dtype=np.float32)
    fields = [(name, "<f4") for name in core_names]
    tail: dict[str, np.ndarray] = {}
    if layout == "inria":
        if with_segments and g.segments is not None:
            tail["segment"] = np.asarray(g.segments).astype("<i4")
        for name, values in g.extra.items():
            if name in core_names or name in tail:
                raise ValueError(f"Gaussians.extra[{name!r}] clashes with a 3DGS property name")
            values = np.asarray(values)
            tail[name] = values if values.dtype.str[1:] in _PLY_NAMES else values.astype(np.float32)
    fields += [(name, "<" + a.dtype.str[1:]) for name, a in tail.items()]
    out = np.empty(n, dtype=fields)
    rows = out.view(np.uint8).reshape(n, out.dtype.itemsize)
    rows[:, :4 * len(core_names)] = np.ascontiguousarray(core).view(np.uint8).reshape(n, 4 * len(core_names))
    for name, values in tail.items():
        out[name] = values
    write_vertices(path, out)
    log.debug("wrote %d Gaussians (SH degree %d, %s layout) to %s", n, g.sh_degree, layout, path)
