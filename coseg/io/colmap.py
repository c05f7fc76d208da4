"""COLMAP sparse models: cameras, images and points3D in text or binary form.

Parsing lives here, and `camera_intrinsics`, which turns a COLMAP camera
model into pinhole intrinsics plus a `coseg.undistort.Distortion`
(unsupported models are an error naming the model); building
`coseg.scene.Camera` objects is the COLMAP reader plugin's job.
COLMAP stores world-to-camera poses as a unit quaternion (w, x, y, z) and a
translation in the OpenCV camera convention, with the centre of the top-left
pixel at (0.5, 0.5) -- the project's own convention, so no conversion is
needed. File layouts follow COLMAP's documentation ("Output format").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from coseg.errors import InputError

if TYPE_CHECKING:
    from coseg.undistort import Distortion

#: COLMAP camera model id -> (name, number of parameters).
CAMERA_MODELS: dict[int, tuple[str, int]] = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
    4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
_PARAM_COUNT = {name: n for name, n in CAMERA_MODELS.values()}
#: Models read, each exactly one of OpenCV's two lens models (COLMAP's
#: src/colmap/sensor/models.h gives the same equations).
SUPPORTED_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV",
                    "OPENCV_FISHEYE", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE")


@dataclass
class ColmapCamera:
    """One entry of cameras.{txt,bin}; `params` in COLMAP's order for `model`."""

    camera_id: int
    model: str
    width: int
    height: int
    params: np.ndarray


@dataclass
class ColmapImage:
    """One registered image of images.{txt,bin} (2D keypoints are not kept)."""

    image_id: int
    qvec: np.ndarray
    """[4] world-to-camera rotation as a quaternion (w, x, y, z)."""
    tvec: np.ndarray
    """[3] world-to-camera translation."""
    camera_id: int
    name: str

    @property
    def world_to_camera(self) -> np.ndarray:
        """[4, 4] float64 world-to-camera matrix (OpenCV convention)."""
        m = np.eye(4)
        m[:3, :3] = qvec_to_rotmat(self.qvec)
        m[:3, 3] = self.tvec
        return m


@dataclass
class ColmapModel:
    """A sparse reconstruction; `points_xyz` is None when points3D is absent."""

    cameras: dict[int, ColmapCamera]
    images: list[ColmapImage]
    points_xyz: np.ndarray | None
    """[P, 3] float32 point positions, or None."""
    points_rgb: np.ndarray | None
    """[P, 3] float32 point colours in [0, 1], or None."""
    cameras_path: Path


def camera_intrinsics(cam: ColmapCamera, path: Path) -> tuple[float, float, float, float, "Distortion | None"]:
    """(fx, fy, cx, cy, lens) of a COLMAP camera; the lens is None for pinhole models.

    Args:
        cam: one camera of cameras.{bin,txt}.
        path: that file, for messages.

    Raises:
        InputError: the model is not in `SUPPORTED_MODELS` (the message names it).
    """
    from coseg.undistort import Distortion

    p, model = [float(v) for v in cam.params], cam.model
    if model not in SUPPORTED_MODELS:
        raise InputError(f"{path}: camera {cam.camera_id} uses the {model} model, which is not supported "
                         f"(supported: {', '.join(SUPPORTED_MODELS)}); undistort the images first "
                         "(colmap image_undistorter)")
    if len(p) != _PARAM_COUNT[model]:
        raise InputError(f"{path}: camera {cam.camera_id} ({model}) has {len(p)} parameters, "
                         f"expected {_PARAM_COUNT[model]}")
    source = f"COLMAP {model}"
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"):
        fx = fy = p[0]
        cx, cy, extra = p[1], p[2], p[3:]
    else:
        fx, fy, cx, cy, extra = p[0], p[1], p[2], p[3], p[4:]
    if model in ("SIMPLE_PINHOLE", "PINHOLE"):
        lens = None
    elif model in ("OPENCV_FISHEYE", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"):
        lens = Distortion.fisheye(source, *extra)
    else:
        # SIMPLE_RADIAL k / RADIAL k1 k2 / OPENCV k1 k2 p1 p2 / FULL_OPENCV k1 k2 p1 p2 k3 k4 k5 k6:
        # each a prefix of OpenCV's coefficient order
        lens = Distortion.radial_tangential(source, *extra)
    return fx, fy, cx, cy, lens


def qvec_to_rotmat(q: np.ndarray) -> np.ndarray:
    """[4] quaternion (w, x, y, z), normalised here -> [3, 3] rotation matrix (NaN for a zero or non-finite
    quaternion: the pose check of the reader then rejects it)."""
    q = np.asarray(q, np.float64)
    scale = np.abs(q).max() if np.isfinite(q).all() else 0.0
    if not scale > 0.0:
        return np.full((3, 3), np.nan)
    q = q / scale  # no overflow in the norm of a huge quaternion
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def find_model_dir(root: Path) -> Path | None:
    """The folder holding cameras.{bin,txt}: `root/sparse/0`, else `root/sparse`."""
    for d in (root / "sparse" / "0", root / "sparse"):
        if any((d / f"cameras.{ext}").is_file() for ext in ("bin", "txt")):
            return d
    return None


def read_model(model_dir: Path) -> ColmapModel:
    """Read cameras, images and (if present) points3D from one model folder.

    Binary files are preferred when both forms exist, as COLMAP itself does.
    """
    model_dir = Path(model_dir)
    paths = {}
    for stem in ("cameras", "images", "points3D"):
        paths[stem] = next((model_dir / f"{stem}.{ext}" for ext in ("bin", "txt")
                            if (model_dir / f"{stem}.{ext}").is_file()), None)
    for stem in ("cameras", "images"):
        if paths[stem] is None:
            raise InputError(f"{model_dir}: COLMAP model lacks {stem}.bin / {stem}.txt")
    binary = {k: p is not None and p.suffix == ".bin" for k, p in paths.items()}
    cameras = (_read_cameras_bin if binary["cameras"] else _read_cameras_txt)(paths["cameras"])
    images = (_read_images_bin if binary["images"] else _read_images_txt)(paths["images"])
    xyz = rgb = None
    if paths["points3D"] is not None:
        xyz, rgb = (_read_points_bin if binary["points3D"] else _read_points_txt)(paths["points3D"])
    for im in images:
        if im.camera_id not in cameras:
            raise InputError(f"{paths['images']}: image {im.name!r} refers to camera {im.camera_id}, "
                             f"which {paths['cameras'].name} does not define")
    return ColmapModel(cameras, images, xyz, rgb, paths["cameras"])


# ------------------------------------------------------------------ text
def _data_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every line, comments blanked (empty lines kept)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise InputError(f"{path}: unreadable ({e})") from e
    return [(i + 1, "" if s.lstrip().startswith("#") else s.strip())
            for i, s in enumerate(text.splitlines())]


def _numbers(path: Path, lineno: int, fields: list[str], kind=float) -> list:
    try:
        return [kind(f) for f in fields]
    except ValueError as e:
        raise InputError(f"{path}:{lineno}: malformed line ({e})") from e


def _read_cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    cams = {}
    for lineno, line in _data_lines(path):
        if not line:
            continue
        f = line.split()
        if len(f) < 4:
            raise InputError(f"{path}:{lineno}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS...")
        cid, width, height = _numbers(path, lineno, [f[0], f[2], f[3]], int)
        params = np.array(_numbers(path, lineno, f[4:]), np.float64)
        need = _PARAM_COUNT.get(f[1])
        if need is not None and len(params) != need:
            raise InputError(f"{path}:{lineno}: camera model {f[1]} needs {need} parameters, got {len(params)}")
        cams[cid] = ColmapCamera(cid, f[1], width, height, params)
    return cams


def _read_images_txt(path: Path) -> list[ColmapImage]:
    lines = _data_lines(path)
    images, i = [], 0
    while i < len(lines):
        lineno, line = lines[i]
        if not line:
            i += 1
            continue
        f = line.split()
        if len(f) < 10:
            raise InputError(f"{path}:{lineno}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME")
        nums = _numbers(path, lineno, f[1:8])
        ids = _numbers(path, lineno, [f[0], f[8]], int)
        images.append(ColmapImage(ids[0], np.array(nums[:4]), np.array(nums[4:]), ids[1], " ".join(f[9:])))
        i += 2  # the next line lists the image's 2D points (possibly empty)
    return images


def _read_points_txt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    xyz, rgb = [], []
    for lineno, line in _data_lines(path):
        if not line:
            continue
        f = line.split()
        if len(f) < 8:
            raise InputError(f"{path}:{lineno}: expected POINT3D_ID X Y Z R G B ERROR TRACK...")
        xyz.append(_numbers(path, lineno, f[1:4]))
        rgb.append(_numbers(path, lineno, f[4:7]))
    return (np.array(xyz, np.float32).reshape(-1, 3),
            (np.array(rgb, np.float32) / 255.0).reshape(-1, 3))


# ---------------------------------------------------------------- binary
class _Bytes:
    """Sequential little-endian reader that reports truncation as InputError."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data = path.read_bytes()
        except OSError as e:
            raise InputError(f"{path}: unreadable ({e})") from e
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise InputError(f"{self.path}: file is truncated (needs {self.pos + size} bytes, "
                             f"has {len(self.data)})")
        out = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return out

    def skip(self, nbytes: int) -> None:
        if self.pos + nbytes > len(self.data):
            raise InputError(f"{self.path}: file is truncated (needs {self.pos + nbytes} bytes, "
                             f"has {len(self.data)})")
        self.pos += nbytes

    def count(self, min_record: int) -> int:
        """Read a uint64 record count and check the file can hold that many records."""
        n = self.take("Q")[0]
        if n * min_record > len(self.data) - self.pos:
            raise InputError(f"{self.path}: file is truncated ({n} records announced, "
                             f"{len(self.data) - self.pos} bytes left)")
        return n

    def name(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise InputError(f"{self.path}: file is truncated (unterminated image name)")
        out = self.data[self.pos:end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return out


def _read_cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    r = _Bytes(path)
    cams = {}
    for _ in range(r.count(24)):
        cid, model_id, width, height = r.take("iiQQ")
        if model_id not in CAMERA_MODELS:
            raise InputError(f"{path}: unknown COLMAP camera model id {model_id} (camera {cid})")
        name, n = CAMERA_MODELS[model_id]
        cams[cid] = ColmapCamera(cid, name, width, height, np.array(r.take(f"{n}d"), np.float64))
    return cams


def _read_images_bin(path: Path) -> list[ColmapImage]:
    r = _Bytes(path)
    images = []
    for _ in range(r.count(73)):
        image_id, *pose, camera_id = r.take("i7di")
        name = r.name()
        r.skip(24 * r.take("Q")[0])  # 2D points: x, y (double), point3D id (int64)
        images.append(ColmapImage(image_id, np.array(pose[:4]), np.array(pose[4:]), camera_id, name))
    return images


_POINT_RECORD = np.dtype([("id", "<u8"), ("xyz", "<f8", 3), ("rgb", "u1", 3), ("error", "<f8"),
                          ("track_length", "<u8")])


def _read_points_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    r = _Bytes(path)
    n = r.count(_POINT_RECORD.itemsize)
    # Records have variable-length tracks: walk the track lengths to find each
    # record's start, then decode all fixed-size headers at once.
    starts = np.empty(n, np.int64)
    pos, size, length_at = r.pos, _POINT_RECORD.itemsize, _POINT_RECORD.fields["track_length"][1]
    unpack, data = struct.Struct("<Q").unpack_from, r.data
    for i in range(n):
        if pos + size > len(data):
            raise InputError(f"{path}: file is truncated (point {i} of {n} is incomplete)")
        starts[i] = pos
        pos += size + 8 * unpack(data, pos + length_at)[0]
    if pos > len(data):
        raise InputError(f"{path}: file is truncated (the last point's track is incomplete)")
    raw = np.frombuffer(data, np.uint8)
    xyz = np.empty((n, 3), np.float32)
    rgb = np.empty((n, 3), np.float32)
    for a in range(0, n, 1 << 16):  # bounded memory for the byte gather
        chunk = starts[a:a + (1 << 16)]
        records = raw[chunk[:, None] + np.arange(size)].view(_POINT_RECORD).reshape(len(chunk))
        xyz[a:a + len(chunk)] = records["xyz"]
        rgb[a:a + len(chunk)] = records["rgb"]
    return xyz, rgb / 255.0
