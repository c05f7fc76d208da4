"""Niantic's ``.spz`` compressed Gaussian splats: read versions 1-4, write version 3.

Follows the published format (nianticlabs/spz README "File Format" and
``src/cc/load-spz.cc``). Versions 1-3 are one gzip stream holding a 16-byte
header (magic ``NGSP`` = 0x5053474e, version, point count, SH degree,
fractional bits, flags, reserved) and the attribute blocks in this order,
each for all Gaussians:

- positions: 3 x 24-bit signed fixed point, ``fractionalBits`` fraction bits
  (version 1: float16 instead);
- alphas: uint8 ``round(sigmoid(opacity) * 255)``;
- colours: uint8 ``round(f_dc * 0.15 * 255 + 0.5 * 255)`` (0.15 instead of the
  SH constant keeps a little out-of-range colour);
- scales: uint8 ``round((log scale + 10) * 16)``;
- rotations: version 3+: "smallest three" in 4 bytes (2 bits index of the
  largest |component| of the normalised (x, y, z, w) quaternion, made
  positive, then the other three as sign bit + 9-bit magnitude of
  |q_i| / sqrt(1/2), first component in the highest bits); version 2: x, y, z
  as uint8 ``round(q * 127.5 + 127.5)`` with w >= 0 derived;
- SH bands 1..3 (degree 4 is refused: the 3DGS layout ends at degree 3),
  coefficient-major with the colour channel inner, uint8
  ``round(v * 128) + 128`` snapped to buckets of 2^(8 - bits) (5 bits for
  band 1, 4 for the others, the reference defaults), decoded as
  ``(b - 128) / 128``.

Version 4 (what the reference library writes today) has a 32-byte plain
header (the same first 16 bytes, then the stream count, the byte offset of
a table of contents and 12 reserved bytes), optional extension records, a
table of (compressed, uncompressed) uint64 sizes and one zstd stream per
non-empty attribute block in the order above; reading it needs the
``zstandard`` package (a dependency of coseg). Extension records
(``[u32 type][u32 length][payload]``) are skipped with a warning: none of
them carries Gaussians.

Coordinates: SPZ stores right-up-back (RUB, OpenGL / three.js) axes; 3DGS
PLYs and coseg use right-down-front (RDF). Converting either way is a
half turn about x: positions' y and z change sign, the quaternions' y and z
(x and w kept), and each SH coefficient gets the sign of the reference's
``coordinateConverter`` for that pair. Segments, extras and SH above degree
3 are not stored in the format.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from coseg.errors import InputError
from coseg.gaussians import Gaussians
from coseg.io.atomic import write_bytes_atomic

log = logging.getLogger(__name__)

MAGIC = 0x5053474E
COLOR_SCALE = 0.15
WRITE_VERSION = 3
FRACTIONAL_BITS = 12
SH1_BITS, SH_REST_BITS = 5, 4
_SQRT1_2 = np.float32(0.7071067811865476)
_DIM_FOR_DEGREE = {0: 0, 1: 3, 2: 8, 3: 15, 4: 24}
# RUB <-> RDF: x kept, y and z flipped (coordinateConverter with x = 1, y = z = -1).
_FLIP_P = np.array([1.0, -1.0, -1.0], np.float32)
_FLIP_Q_XYZ = np.array([1.0, -1.0, -1.0], np.float32)
_FLIP_SH = np.array([-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1], np.float32)


def _flip_to_rdf(means, quats_xyzw, sh):
    """Apply the RUB <-> RDF flips (their own inverse)."""
    k = sh.shape[1]
    return means * _FLIP_P, np.concatenate([quats_xyzw[:, :3] * _FLIP_Q_XYZ, quats_xyzw[:, 3:]], 1), \
        sh * _FLIP_SH[:k, None]


# ---------------------------------------------------------------- reading
def read_spz(path: str | os.PathLike) -> Gaussians:
    """Read a ``.spz`` file (versions 1-4) into Gaussians in the PLY (RDF) axes.

    Raises:
        InputError: unreadable, not an SPZ file, truncated, or an unsupported version.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    if data[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise InputError(f"{path}: truncated or corrupt .spz (gzip: {e})") from None
        header, blocks = _legacy_blocks(path, raw)
    elif len(data) >= 4 and struct.unpack_from("<I", data)[0] == MAGIC:
        header, blocks = _v4_blocks(path, data)
    else:
        raise InputError(f"{path}: not an .spz file (neither gzip nor an NGSP header)")
    return _unpack(path, header, blocks)


def _block_sizes(n: int, version: int, sh_degree: int) -> list[int]:
    """Bytes of positions, alphas, colours, scales, rotations, SH for `n` points."""
    rot = 4 if version >= 3 else 3
    return [n * 3 * (2 if version == 1 else 3), n, n * 3, n * 3, n * rot, n * _DIM_FOR_DEGREE[sh_degree] * 3]


def _check_header(path: Path, magic: int, version: int, n: int, sh_degree: int, newest: int) -> None:
    if magic != MAGIC:
        raise InputError(f"{path}: not an .spz file (bad magic {magic:#x})")
    if not 1 <= version <= newest:
        raise InputError(f"{path}: .spz version {version} is not supported (1-4 are)")
    if sh_degree > 4:
        raise InputError(f"{path}: .spz SH degree {sh_degree} is out of range (0-4)")


def _legacy_blocks(path: Path, raw: bytes) -> tuple[dict, list[bytes]]:
    if len(raw) < 16:
        raise InputError(f"{path}: truncated .spz (no 16-byte header)")
    magic, version, n, degree, frac, flags, _ = struct.unpack_from("<IIIBBBB", raw)
    _check_header(path, magic, version, n, degree, 3)
    sizes = _block_sizes(n, version, degree)
    need = sum(sizes)
    start = 16
    if flags & 0x2:
        # Writers put extension records either right after the header or after the data.
        start = _skip_extensions(raw, 16, len(raw) - need) or 16
        log.warning("%s: skipped the .spz extension records (none carries Gaussians)", path)
    if len(raw) < start + need:
        raise InputError(f"{path}: truncated .spz ({len(raw) - start} data bytes, {n} points need {need})")
    blocks, off = [], start
    for s in sizes:
        blocks.append(raw[off:off + s])
        off += s
    return {"version": version, "n": n, "degree": degree, "frac": frac}, blocks


def _skip_extensions(raw: bytes, start: int, end: int) -> int | None:
    """Offset after extension records that run exactly from `start` to `end`, else None."""
    off = start
    while off + 8 <= end:
        _type, length = struct.unpack_from("<II", raw, off)
        off += 8 + length
    return off if off == end and end > start else None


def _v4_blocks(path: Path, data: bytes) -> tuple[dict, list[bytes]]:
    if len(data) < 32:
        raise InputError(f"{path}: truncated .spz (no 32-byte header)")
    magic, version, n, degree, frac, flags, streams, toc = struct.unpack_from("<IIIBBBBI", data)
    _check_header(path, magic, version, n, degree, 4)
    if version < 4:
        raise InputError(f"{path}: an NGSP header of version {version} must be gzip-compressed")
    if flags & 0x2:
        log.warning("%s: skipped the .spz extension records (none carries Gaussians)", path)
    try:
        import zstandard
    except ImportError:
        raise InputError(f"{path}: .spz version 4 needs the 'zstandard' package (pip install zstandard)") \
            from None
    sizes = [s for s in _block_sizes(n, version, degree)]
    present = [i for i, s in enumerate(sizes) if s]
    if streams != len(present) or toc < 32 or toc + 16 * streams > len(data):
        raise InputError(f"{path}: .spz table of contents does not match {n} points of SH degree {degree}")
    blocks = [b""] * len(sizes)
    off = toc + 16 * streams
    dctx = zstandard.ZstdDecompressor()
    for j, i in enumerate(present):
        csize, usize = struct.unpack_from("<QQ", data, toc + 16 * j)
        if usize != sizes[i] or off + csize > len(data):
            raise InputError(f"{path}: truncated or corrupt .spz stream {j}")
        try:
            blocks[i] = dctx.decompress(data[off:off + csize], max_output_size=usize)
        except zstandard.ZstdError as e:
            raise InputError(f"{path}: corrupt .spz stream {j} ({e})") from None
        if len(blocks[i]) != usize:
            raise InputError(f"{path}: truncated .spz stream {j}")
        off += csize
    return {"version": version, "n": n, "degree": degree, "frac": frac}, blocks


def _unpack(path: Path, h: dict, blocks: list[bytes]) -> Gaussians:
    n, version, degree = h["n"], h["version"], h["degree"]
    if degree > 3:
        raise InputError(f"{path}: .spz SH degree {degree} is above the 3DGS PLY's 3; not supported")
    pos_b, alpha_b, color_b, scale_b, rot_b, sh_b = (np.frombuffer(b, np.uint8) for b in blocks)
    if version == 1:
        means = np.frombuffer(blocks[0], "<f2").astype(np.float32).reshape(n, 3)
    else:
        p = pos_b.reshape(n, 3, 3).astype(np.int32)
        fixed = p[..., 0] | (p[..., 1] << 8) | (p[..., 2] << 16)
        fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
        means = (fixed.astype(np.float32) * np.float32(1.0 / (1 << h["frac"]))).astype(np.float32)
    log_scales = (scale_b.reshape(n, 3).astype(np.float32) / np.float32(16.0) - np.float32(10.0))
    with np.errstate(divide="ignore"):
        a = alpha_b.astype(np.float32) / np.float32(255.0)
        opacity = np.log(a / (np.float32(1.0) - a)).astype(np.float32)
    # A byte of 0 or 255 decodes to -inf / inf in the reference too; keep a finite logit.
    opacity = np.clip(opacity, -40.0, 40.0).astype(np.float32)
    dc = ((color_b.reshape(n, 3).astype(np.float32) / np.float32(255.0) - np.float32(0.5))
          / np.float32(COLOR_SCALE)).astype(np.float32)
    quats_xyzw = (_unpack_smallest_three(rot_b.reshape(n, 4)) if version >= 3
                  else _unpack_first_three(rot_b.reshape(n, 3)))
    k = _DIM_FOR_DEGREE[degree]
    sh = ((sh_b.reshape(n, k, 3).astype(np.float32) - np.float32(128.0)) / np.float32(128.0)
          if k else np.zeros((n, 0, 3), np.float32))
    means, quats_xyzw, sh = _flip_to_rdf(means, quats_xyzw, sh)
    quats = np.ascontiguousarray(quats_xyzw[:, [3, 0, 1, 2]], np.float32)
    return Gaussians(means=np.ascontiguousarray(means, np.float32), quats=quats,
                     log_scales=np.ascontiguousarray(log_scales), opacity_logits=opacity, sh_dc=dc,
                     sh_rest=np.ascontiguousarray(sh, np.float32))


def _unpack_smallest_three(r: np.ndarray) -> np.ndarray:
    """[N, 4] uint8 -> [N, 4] float32 (x, y, z, w) quaternions."""
    comp = (r[:, 0].astype(np.uint32) | (r[:, 1].astype(np.uint32) << 8) | (r[:, 2].astype(np.uint32) << 16)
            | (r[:, 3].astype(np.uint32) << 24))
    largest = (comp >> 30).astype(np.int64)
    q = np.zeros((len(r), 4), np.float32)
    sum_sq = np.zeros(len(r), np.float32)
    # The last stored component (lowest bits) is the highest index that is not the largest.
    slots = np.array([[i for i in range(4) if i != big] for big in range(4)])[largest]  # [N, 3]
    for j in (2, 1, 0):
        mag = (comp & 0x1FF).astype(np.float32)
        neg = (comp >> 9) & 1
        comp = comp >> 10
        val = _SQRT1_2 * mag / np.float32(511.0)
        val = np.where(neg == 1, -val, val).astype(np.float32)
        q[np.arange(len(r)), slots[:, j]] = val
        sum_sq += val * val
    q[np.arange(len(r)), largest] = np.sqrt(np.maximum(np.float32(0.0), np.float32(1.0) - sum_sq))
    return q


def _unpack_first_three(r: np.ndarray) -> np.ndarray:
    xyz = r.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    w = np.sqrt(np.maximum(0.0, 1.0 - (xyz * xyz).sum(1))).astype(np.float32)
    return np.concatenate([xyz, w[:, None]], 1)


# ---------------------------------------------------------------- writing
def _to_uint8(x: np.ndarray) -> np.ndarray:
    """The reference's toUint8: clamp(round(x), 0, 255) (round half away from zero)."""
    return np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5), 0, 255).astype(np.uint8)


def pack_spz(gaussians: Gaussians) -> bytes:
    """The uncompressed version-3 SPZ stream of `gaussians` (header and blocks; see module docstring)."""
    g = gaussians
    n = len(g)
    degree = g.sh_degree
    qn = g.quats.astype(np.float32)
    norm = np.linalg.norm(qn, axis=1, keepdims=True)
    qn = np.divide(qn, norm, out=np.tile(np.float32([1, 0, 0, 0]), (n, 1)), where=norm > 0)
    xyzw = qn[:, [1, 2, 3, 0]]
    means, xyzw, sh = _flip_to_rdf(g.means.astype(np.float32), xyzw, g.sh_rest.astype(np.float32))
    fixed = np.sign(means) * np.floor(np.abs(means.astype(np.float64) * (1 << FRACTIONAL_BITS)) + 0.5)
    fixed = fixed.astype(np.int64).reshape(-1)
    if np.any(np.abs(fixed) >= (1 << 23)):
        raise ValueError(f"positions beyond +-{(1 << 23) / (1 << FRACTIONAL_BITS):g} do not fit .spz's "
                         "24-bit fixed point")
    fixed &= 0xFFFFFF
    positions = np.stack([fixed & 0xFF, (fixed >> 8) & 0xFF, (fixed >> 16) & 0xFF], 1).astype(np.uint8)
    alphas = _to_uint8(_sigmoid32(g.opacity_logits) * np.float32(255.0))
    colors = _to_uint8(g.sh_dc.astype(np.float32) * np.float32(COLOR_SCALE * 255.0) + np.float32(0.5 * 255.0))
    scales = _to_uint8((g.log_scales.astype(np.float32) + np.float32(10.0)) * np.float32(16.0))
    rotations = _pack_smallest_three(xyzw)
    k = sh.shape[1]
    buckets = np.where(np.arange(k) < 3, 1 << (8 - SH1_BITS), 1 << (8 - SH_REST_BITS))[None, :, None]
    q = (np.sign(sh) * np.floor(np.abs(sh * np.float32(128.0)) + 0.5) + 128.0).astype(np.int32)
    q = np.clip((q + buckets // 2) // buckets * buckets, 0, 255).astype(np.uint8)
    header = struct.pack("<IIIBBBB", MAGIC, WRITE_VERSION, n, degree, FRACTIONAL_BITS, 0, 0)
    return b"".join([header, positions.tobytes(), alphas.tobytes(), colors.tobytes(), scales.tobytes(),
                     rotations.tobytes(), q.tobytes()])


def _sigmoid32(x: np.ndarray) -> np.ndarray:
    return (np.float32(1.0) / (np.float32(1.0) + np.exp(-x.astype(np.float32)))).astype(np.float32)


def _pack_smallest_three(q: np.ndarray) -> np.ndarray:
    """[N, 4] unit (x, y, z, w) -> [N, 4] uint8 (reference packQuaternionSmallestThree)."""
    n = len(q)
    largest = np.argmax(np.abs(q), axis=1)
    negate = q[np.arange(n), largest] < 0
    comp = largest.astype(np.uint32)
    for i in range(4):
        keep = largest != i
        negbit = ((q[:, i] < 0) ^ negate).astype(np.uint32)
        mag = (np.float32(511.0) * (np.abs(q[:, i]) / _SQRT1_2) + np.float32(0.5)).astype(np.uint32)
        comp = np.where(keep, (comp << 10) | (negbit << 9) | mag, comp)
    return comp.astype("<u4").view(np.uint8).reshape(n, 4)


def write_spz(gaussians: Gaussians, path: str | os.PathLike) -> None:
    """Write `gaussians` as a version-3 (gzip) ``.spz``, atomically.

    Version 3 rather than 4: every SPZ reader so far opens it (the reference
    library reads versions 1-4), and it needs only gzip. SH above degree 3,
    segments and extras are not stored.

    Raises:
        ValueError: a position outside the 24-bit fixed-point range (+-2048 units).
        CosegError: NaN or inf values (never written).
    """
    gaussians.check_writable(path)
    write_bytes_atomic(path, gzip.compress(pack_spz(gaussians), compresslevel=6, mtime=0))
    log.debug("wrote %d Gaussians to %s", len(gaussians), path)
