"""Serving a camera's pixels: undistortion and working resolution, cached by content.

A `coseg.scene.Camera` whose ``source`` is set is served by resampling the
source camera's files (its photo, label, GT and depth maps, at the photo's
size and in its lens): first undistortion to the pinhole camera at the photo's
size (OpenCV ``remap``: bilinear for colour, nearest for id and depth maps),
then resizing to the camera's working size (area averaging for colour,
nearest for maps; `coseg.io.images`). Map pixels that see no part of the photo
get a fill value: the void id (255, or 65535 for 16-bit maps) for labels and
GT, 0 for instance masks and depth; `valid_mask` marks them for the building
loss.

A map already at the camera's working size (and not at the photo's) is taken
as it is: such maps were made from the served images (e.g. by `coseg labels`).

Results are cached as ``.npy`` files in a cache folder (a run's ``cache/``
or ``--cache``), named by a hash of the input file's bytes and everything
the resampling depends on, so a changed file or setting never reuses a stale
result. The cache folder never lies among a scene's inputs
(`coseg.io.safety.check_output`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal

import numpy as np

from coseg.errors import InputError

if TYPE_CHECKING:
    from coseg.scene import Camera

log = logging.getLogger(__name__)

Kind = Literal["rgb", "ids", "depth"]
CACHE_VERSION = 1
"""Bumped when the resampling changes, so old cache files are not reused."""


def photo_camera(cam: "Camera") -> "Camera":
    """The camera of `cam`'s files: its ``source`` if set, else `cam` itself."""
    return cam.source if cam.source is not None else cam


def pinhole_at_photo_size(cam: "Camera") -> "Camera":
    """`cam` (a served pinhole camera) scaled back to its photo's size."""
    src = photo_camera(cam)
    return cam.resized(src.width, src.height)


def resample(cam: "Camera", path: Path, kind: Kind, read: Callable[[Path], np.ndarray], fill: float = 0,
             cache_dir: Path | None = None, extra_key: str = "") -> np.ndarray:
    """`path`'s pixels as `cam` sees them.

    Args:
        cam: the served camera.
        path: a file at the photo's size (or already at `cam`'s size, see module docstring).
        kind: "rgb" ([H, W, 3] float32), "ids" ([H, W] int32) or "depth" ([H, W] float32).
        read: reads `path` at its stored size.
        fill: value of pixels that see no part of the photo (ids, depth).
        cache_dir: cache folder, or None to resample in memory every time.
        extra_key: anything else the result depends on (e.g. the background colour).

    Returns:
        The array at (cam.height, cam.width).
    """
    src = photo_camera(cam)
    if src is cam:
        return read(path)
    key = None
    if cache_dir is not None:
        key = _cache_key(cam, path, kind, fill, extra_key)
        hit = _cache_read(cache_dir / f"{key}.npy")
        if hit is not None:
            return _from_stored(hit, kind)
    data = read(path)
    if data.shape[:2] == (cam.height, cam.width) and (src.height, src.width) != (cam.height, cam.width):
        out = data
    elif data.shape[:2] != (src.height, src.width):
        raise InputError(f"{path}: size {data.shape[1]}x{data.shape[0]} does not match its photo "
                         f"{src.image_path.name} ({src.width}x{src.height})")
    else:
        out = _resample(cam, src, data, kind, fill)
    stored = _to_stored(out, kind)
    if key is not None:
        _cache_write(cache_dir / f"{key}.npy", stored)
    return _from_stored(stored, kind)


def _to_stored(data: np.ndarray, kind: Kind) -> np.ndarray:
    # Colour is kept as 16-bit (error < 1e-5, half the bytes of float32) whether
    # or not a cache is used, so a cache hit returns exactly what a miss does.
    if kind == "rgb":
        return np.round(np.clip(data, 0.0, 1.0) * 65535.0).astype(np.uint16)
    return data


def _from_stored(data: np.ndarray, kind: Kind) -> np.ndarray:
    if kind == "rgb":
        return data.astype(np.float32) / np.float32(65535.0)
    return data


def _resample(cam: "Camera", src: "Camera", data: np.ndarray, kind: Kind, fill: float) -> np.ndarray:
    import cv2

    from coseg.io.images import resize_area, resize_nearest
    from coseg.undistort import undistortion_maps

    if src.distortion is not None:
        mx, my = undistortion_maps(src, pinhole_at_photo_size(cam))
        if kind == "rgb":
            # replicate the border: edge pixels are not darkened by blending with a fill colour
            data = cv2.remap(data, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        else:
            dtype = data.dtype
            # float32 holds every uint16 id exactly; OpenCV remaps no int32 images
            data = cv2.remap(data.astype(np.float32), mx, my, cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=float(fill)).astype(dtype)
    size = (cam.height, cam.width)
    return resize_area(data, size) if kind == "rgb" else resize_nearest(data, size)


def valid_mask(cam: "Camera") -> np.ndarray | None:
    """[H, W] bool: pixels of `cam` that see the photo, or None when all do.

    A working-size pixel is valid only when every photo-size pixel under it is.
    """
    src = photo_camera(cam)
    if src.distortion is None:
        return None
    from coseg.io.images import resize_area
    from coseg.undistort import undistortion_maps, valid_pixels

    full = valid_pixels(undistortion_maps(src, pinhole_at_photo_size(cam)), (src.width, src.height))
    if full.all():
        return None
    return resize_area(full.astype(np.float32), (cam.height, cam.width)) > 0.999


def _cache_key(cam: "Camera", path: Path, kind: str, fill: float, extra_key: str) -> str:
    src = photo_camera(cam)
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as e:
        raise InputError(f"{path}: unreadable ({e})") from e

    def intrinsics(c: "Camera") -> list:
        return [c.width, c.height, c.fx, c.fy, c.cx, c.cy,
                None if c.distortion is None else dataclasses.astuple(c.distortion)[:2]]

    h.update(json.dumps([CACHE_VERSION, kind, fill, extra_key, intrinsics(src), intrinsics(cam)]).encode())
    return f"{path.stem}-{kind}-{h.hexdigest()[:20]}"


def _cache_read(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:  # a damaged cache file is recomputed
        log.warning("%s: unreadable cache file, recomputing (%s)", path, e)
        return None


def _cache_write(path: Path, data: np.ndarray) -> None:
    from coseg.io.atomic import write_bytes_atomic
    from coseg.io.safety import os_errors

    buf = io.BytesIO()
    np.save(buf, data, allow_pickle=False)
    with os_errors(path, "cannot write the pixel cache"):
        write_bytes_atomic(path, buf.getvalue())
