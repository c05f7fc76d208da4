"""PlayCanvas / SuperSplat compressed PLY (``.compressed.ply``): read and write.

Follows the published writer (SuperSplat ``src/splat-serialize.ts``,
``serializePlyCompressed``) and reader (PlayCanvas engine
``src/scene/gsplat/gsplat-compressed-data.js``). A binary little-endian PLY
with three elements:

- ``chunk`` (one per 256 Gaussians): float32 ``min_x min_y min_z max_x max_y
  max_z min_scale_x .. max_scale_z`` and, in files since SuperSplat 1.x,
  ``min_r min_g min_b max_r max_g max_b`` (the colour range; older files have
  only the first 12 and store colours unscaled);
- ``vertex``: uint32 ``packed_position``, ``packed_rotation``,
  ``packed_scale``, ``packed_color``. Position and log-scale are 11/10/11-bit
  unorms of the value within its chunk's range (x in the top bits);
  colour is 8/8/8/8 (r in the top byte) of ``0.5 + SH_C0 * f_dc`` within the
  chunk's colour range, and the opacity ``sigmoid(opacity)`` unscaled;
  rotation is 2 bits of the index of the largest |component| of the
  normalised (rot_0, rot_1, rot_2, rot_3) quaternion, sign made positive,
  then the other three, in order, as 10-bit unorms of ``q * sqrt(1/2) + 0.5``;
  ``unorm(v, bits) = clamp(floor(v * (2^bits - 1) + 0.5))``;
- ``sh`` (optional): uchar ``f_rest_0 ..`` in the 3DGS channel-major order,
  written ``trunc((v / 8 + 0.5) * 256)`` clamped to 0-255 and read back as
  ``b * 8 / 255 - 4`` (the two tools' own asymmetric pair, kept as published).

The writer sorts the Gaussians in Morton order of their positions (10 bits
per axis over the bounding box), as SuperSplat does, so each chunk of 256 is
spatially compact and its ranges small. One deviation: a last chunk with
fewer than 256 Gaussians takes its ranges from its own Gaussians only
(SuperSplat's reuses a 256-slot buffer and so also spans stale entries of
the previous chunk); readers do not depend on it. Decoding maps a byte of
opacity 0 or 255 to a logit of -40 or 40 (as the engine does). Segments and
extras are not stored.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from coseg.errors import InputError
from coseg.gaussians import SH_C0, Gaussians
from coseg.io.atomic import atomic_open
from coseg.io.ply import PlyHeader, read_ply_header

log = logging.getLogger(__name__)

CHUNK = 256
CHUNK_PROPS = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
               "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
               "min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
VERTEX_PROPS = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
_SH_COUNTS = {0: 0, 9: 1, 24: 2, 45: 3}


def is_compressed_ply(header: PlyHeader) -> bool:
    """True for a header with a ``chunk`` element and a packed ``vertex`` element."""
    vertex = header.element("vertex")
    return (header.element("chunk") is not None and vertex is not None
            and "packed_position" in [n for n, _ in vertex.properties])


# ---------------------------------------------------------------- reading
def _unorm(v: np.ndarray, shift: int, bits: int) -> np.ndarray:
    t = (1 << bits) - 1
    return ((v >> np.uint32(shift)) & np.uint32(t)).astype(np.float32) / np.float32(t)


def _lerp(lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    return (lo * (np.float32(1.0) - t) + hi * t).astype(np.float32)


def read_elements(path: Path, header: PlyHeader) -> dict[str, np.ndarray]:
    """Every element of a binary PLY with fixed-size rows, as structured arrays by name."""
    if header.byte_order == "ascii" or any(e.has_lists() for e in header.elements):
        raise InputError(f"{path}: a compressed PLY must be binary without list properties")
    need = header.body_offset + sum(e.count * e.dtype(header.byte_order).itemsize for e in header.elements)
    size = path.stat().st_size
    if size < need:
        raise InputError(f"{path}: truncated PLY file ({size} bytes, the header needs at least {need})")
    out, off = {}, header.body_offset
    with open(path, "rb") as f:
        for e in header.elements:
            f.seek(off)
            dt = e.dtype(header.byte_order)
            out[e.name] = np.fromfile(f, dtype=dt, count=e.count)
            off += e.count * dt.itemsize
    return out


def read_compressed_ply(path: str | os.PathLike) -> Gaussians:
    """Read a PlayCanvas / SuperSplat compressed PLY (layout in the module docstring).

    Raises:
        InputError: not such a file, truncated, or inconsistent element counts.
    """
    path = Path(path)
    header = read_ply_header(path)
    if not is_compressed_ply(header):
        raise InputError(f"{path}: not a compressed PLY (no chunk element and packed vertex properties)")
    el = read_elements(path, header)
    chunk, vertex = el["chunk"], el["vertex"]
    n = len(vertex)
    names = chunk.dtype.names
    missing = [p for p in CHUNK_PROPS[:12] if p not in names] + [p for p in VERTEX_PROPS
                                                                 if p not in vertex.dtype.names]
    if missing:
        raise InputError(f"{path}: compressed PLY lacks {', '.join(missing)}")
    if len(chunk) != -(-n // CHUNK):
        raise InputError(f"{path}: {len(chunk)} chunks do not match {n} Gaussians (256 per chunk)")
    c = {p: chunk[p].astype(np.float32)[np.arange(n) // CHUNK] for p in names if p in CHUNK_PROPS}
    pos, rot, scl, col = (vertex[p].astype(np.uint32) for p in VERTEX_PROPS)
    means = np.stack([_lerp(c[f"min_{a}"], c[f"max_{a}"], _unorm(pos, s, b))
                      for a, s, b in (("x", 21, 11), ("y", 11, 10), ("z", 0, 11))], 1)
    log_scales = np.stack([_lerp(c[f"min_scale_{a}"], c[f"max_scale_{a}"], _unorm(scl, s, b))
                           for a, s, b in (("x", 21, 11), ("y", 11, 10), ("z", 0, 11))], 1)
    rgb = np.stack([_unorm(col, s, 8) for s in (24, 16, 8)], 1)
    if "min_r" in c:
        rgb = np.stack([_lerp(c[f"min_{a}"], c[f"max_{a}"], rgb[:, i]) for i, a in enumerate("rgb")], 1)
    alpha = _unorm(col, 0, 8)
    with np.errstate(divide="ignore"):
        opacity = np.where(alpha <= 0, -40.0, np.where(alpha >= 1, 40.0, -np.log(1.0 / alpha - 1.0)))
    sh_rest = np.zeros((n, 0, 3), np.float32)
    if "sh" in el:
        sh = el["sh"]
        count = len(sh.dtype.names)
        if count not in _SH_COUNTS or len(sh) != n:
            raise InputError(f"{path}: the sh element has {count} properties x {len(sh)} rows "
                             f"(expected 9, 24 or 45 x {n})")
        k = count // 3
        vals = np.stack([sh[f"f_rest_{i}"] for i in range(count)], 1).astype(np.float32)
        sh_rest = np.ascontiguousarray((vals * np.float32(8.0 / 255.0) - np.float32(4.0))
                                       .reshape(n, 3, k).transpose(0, 2, 1))
    return Gaussians(means=np.ascontiguousarray(means), quats=_unpack_rotation(rot),
                     log_scales=np.ascontiguousarray(log_scales), opacity_logits=opacity.astype(np.float32),
                     sh_dc=((rgb - np.float32(0.5)) / np.float32(SH_C0)).astype(np.float32), sh_rest=sh_rest)


def _unpack_rotation(v: np.ndarray) -> np.ndarray:
    """[N] uint32 -> [N, 4] float32 (rot_0..rot_3) quaternions."""
    n = len(v)
    norm = np.float32(np.sqrt(2.0))
    abc = np.stack([(_unorm(v, s, 10) - np.float32(0.5)) * norm for s in (20, 10, 0)], 1)
    m = np.sqrt(np.maximum(np.float32(0.0), np.float32(1.0) - (abc * abc).sum(1)))
    largest = (v >> np.uint32(30)).astype(np.int64)
    slots = np.array([[i for i in range(4) if i != big] for big in range(4)])[largest]
    q = np.zeros((n, 4), np.float32)
    rows = np.arange(n)
    for j in range(3):
        q[rows, slots[:, j]] = abc[:, j]
    q[rows, largest] = m
    return q


# ---------------------------------------------------------------- writing
def morton_order(means: np.ndarray) -> np.ndarray:
    """[N] indices sorting `means` [N, 3] by their 30-bit Morton code over the bounding box (stable)."""
    lo, hi = means.min(0), means.max(0)
    ext = np.where(hi - lo > 0, hi - lo, 1.0)
    cells = np.clip(np.floor(1024 * (means - lo) / ext), 0, 1023).astype(np.uint32)

    def part1by2(x: np.ndarray) -> np.ndarray:
        x = x & np.uint32(0x3FF)
        x = (x ^ (x << np.uint32(16))) & np.uint32(0xFF0000FF)
        x = (x ^ (x << np.uint32(8))) & np.uint32(0x0300F00F)
        x = (x ^ (x << np.uint32(4))) & np.uint32(0x030C30C3)
        return (x ^ (x << np.uint32(2))) & np.uint32(0x09249249)

    code = (part1by2(cells[:, 2]) << np.uint32(2)) + (part1by2(cells[:, 1]) << np.uint32(1)) + part1by2(cells[:, 0])
    return np.argsort(code, kind="stable")


def _pack_unorm(v: np.ndarray, bits: int) -> np.ndarray:
    t = (1 << bits) - 1
    return np.clip(np.floor(v * t + 0.5), 0, t).astype(np.uint32)


def _normalize(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    span = hi - lo
    safe = np.where(span < 1e-5, 1.0, span)
    t = np.where(span < 1e-5, 0.0, (x - lo) / safe)
    return np.where(x <= lo, 0.0, np.where(x >= hi, 1.0, t))


def _chunk_range(values: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-chunk min and max of `values` [N, C]: two [chunks, C] arrays."""
    return np.minimum.reduceat(values, starts, axis=0), np.maximum.reduceat(values, starts, axis=0)


def write_compressed_ply(gaussians: Gaussians, path: str | os.PathLike) -> None:
    """Write `gaussians` as a PlayCanvas / SuperSplat compressed PLY, atomically (module docstring);
    NaN / inf values are refused."""
    gaussians.check_writable(path)
    g = gaussians.subset(morton_order(gaussians.means)) if len(gaussians) else gaussians
    n = len(g)
    if n == 0:
        raise ValueError("a compressed PLY needs at least one Gaussian")
    starts = np.arange(0, n, CHUNK)
    chunk_of = np.arange(n) // CHUNK
    means = g.means.astype(np.float32)
    scales = g.log_scales.astype(np.float32)
    rgb = (g.sh_dc.astype(np.float32) * np.float32(SH_C0) + np.float32(0.5)).astype(np.float32)
    plo, phi = _chunk_range(means, starts)
    slo, shi = _chunk_range(scales, starts)
    slo, shi = np.clip(slo, -20, 20), np.clip(shi, -20, 20)
    clo, chi = _chunk_range(rgb, starts)

    def pack111011(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        t = _normalize(x.astype(np.float64), lo[chunk_of].astype(np.float64), hi[chunk_of].astype(np.float64))
        return (_pack_unorm(t[:, 0], 11) << np.uint32(21)) | (_pack_unorm(t[:, 1], 10) << np.uint32(11)) \
            | _pack_unorm(t[:, 2], 11)

    tc = _normalize(rgb.astype(np.float64), clo[chunk_of].astype(np.float64), chi[chunk_of].astype(np.float64))
    alpha = 1.0 / (1.0 + np.exp(-g.opacity_logits.astype(np.float64)))
    color = ((_pack_unorm(tc[:, 0], 8) << np.uint32(24)) | (_pack_unorm(tc[:, 1], 8) << np.uint32(16))
             | (_pack_unorm(tc[:, 2], 8) << np.uint32(8)) | _pack_unorm(alpha, 8))
    vertex = np.empty(n, [(p, "<u4") for p in VERTEX_PROPS])
    vertex["packed_position"] = pack111011(means, plo, phi)
    vertex["packed_rotation"] = _pack_rotation(g.quats)
    vertex["packed_scale"] = pack111011(scales, slo, shi)
    vertex["packed_color"] = color
    chunk = np.empty(len(starts), [(p, "<f4") for p in CHUNK_PROPS])
    for arr, lo_hi in ((("x", "y", "z"), (plo, phi)), (("scale_x", "scale_y", "scale_z"), (slo, shi)),
                       (("r", "g", "b"), (clo, chi))):
        for i, a in enumerate(arr):
            chunk[f"min_{a}"] = lo_hi[0][:, i]
            chunk[f"max_{a}"] = lo_hi[1][:, i]
    k = g.sh_rest.shape[1]
    lines = ["ply", "format binary_little_endian 1.0", "comment Generated by CoSeg Studio",
             f"element chunk {len(chunk)}", *(f"property float {p}" for p in CHUNK_PROPS),
             f"element vertex {n}", *(f"property uint {p}" for p in VERTEX_PROPS)]
    body = [chunk.tobytes(), vertex.tobytes()]
    if k:
        flat = g.sh_rest.astype(np.float64).transpose(0, 2, 1).reshape(n, 3 * k)
        body.append(np.clip(np.trunc((flat / 8.0 + 0.5) * 256.0), 0, 255).astype(np.uint8).tobytes())
        lines += [f"element sh {n}", *(f"property uchar f_rest_{i}" for i in range(3 * k))]
    lines.append("end_header")
    with atomic_open(path, "wb") as f:
        f.write(("\n".join(lines) + "\n").encode("ascii"))
        for b in body:
            f.write(b)
    log.debug("wrote %d Gaussians in %d chunks to %s", n, len(chunk), path)


def _pack_rotation(quats: np.ndarray) -> np.ndarray:
    """[N, 4] (rot_0..rot_3) -> [N] uint32, 2-bit index of the largest then three 10-bit components."""
    q = quats.astype(np.float64)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.divide(q, norm, out=np.tile([1.0, 0.0, 0.0, 0.0], (len(q), 1)), where=norm > 0)
    largest = np.argmax(np.abs(q), axis=1)
    q = np.where((q[np.arange(len(q)), largest] < 0)[:, None], -q, q)
    out = largest.astype(np.uint32)
    half = np.sqrt(2.0) * 0.5
    for i in range(4):
        out = np.where(largest != i, (out << np.uint32(10)) | _pack_unorm(q[:, i] * half + 0.5, 10), out)
    return out.astype(np.uint32)
