"""Image, label-map and depth-map reading and writing with clear errors.

Resizing (`resize_area`, `resize_nearest`, any size, the pixel-centre
convention of `coseg.scene`): RGB by area averaging (OpenCV INTER_AREA, exact
block means for integer factors), label and depth maps by nearest sampling
(never mixes ids). The readers below resize to a requested size only when the
stored size is an integer multiple of it; `coseg.resample` does the general
case (undistortion and non-integer working resolutions).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coseg.errors import InputError


def _imread(path: Path, indices: bool = False) -> np.ndarray:
    """Decode an image; with `indices`, a palette (mode P) image gives its palette indices.

    Raises:
        InputError: missing or undecodable, in one short line (not the decoder's advice).
    """
    import imageio.v3 as iio
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.suffix.lower() != ".exr":  # PIL reads every other format we accept
        try:
            with Image.open(path) as im:
                if indices and im.mode == "P":  # what many segmenters write: the ids are the indices
                    return np.asarray(im)
        except UnidentifiedImageError:
            raise InputError(f"{path}: not an image file (no known image format)") from None
        except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for a corrupt header
            raise InputError(f"{path}: unreadable image ({_first_line(e)})") from None
    try:
        return np.asarray(iio.imread(path))
    except Exception as e:  # imageio raises many types for a corrupt file
        raise InputError(f"{path}: unreadable image ({_first_line(e)})") from e


def _first_line(e: Exception) -> str:
    """The first line of an exception's message (decoders append multi-line install advice)."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:200]


def resize_area(img: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """[H, W, ...] float image -> [h, w, ...] by area averaging (OpenCV INTER_AREA).

    Pixel (i, j) of the result covers [i W/w, (i+1) W/w) of the input, the
    pixel-centre convention of `coseg.scene`.
    """
    import cv2

    h, w = size_hw
    if img.shape[:2] == (h, w):
        return img
    out = cv2.resize(np.ascontiguousarray(img, np.float32), (w, h), interpolation=cv2.INTER_AREA)
    return out.reshape(h, w, *img.shape[2:])


def nearest_indices(src: int, dst: int) -> np.ndarray:
    """[dst] int64 index of the source pixel that contains each target pixel's centre.

    (OpenCV's INTER_NEAREST_EXACT rule; a centre on a pixel boundary takes the later pixel.)
    """
    return np.minimum(np.floor((np.arange(dst) + 0.5) * (src / dst)), src - 1).astype(np.int64)


def resize_nearest(img: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """[H, W, ...] map -> [h, w, ...] by nearest sampling (ids are never mixed)."""
    h, w = size_hw
    if img.shape[:2] == (h, w):
        return img
    rows, cols = nearest_indices(img.shape[0], h), nearest_indices(img.shape[1], w)
    return np.ascontiguousarray(img[rows][:, cols])


def read_rgb(path: Path, size_hw: tuple[int, int] | None = None, white_background: bool = False) -> np.ndarray:
    """Read an image as float32 [H, W, 3] in [0, 1], at its size or resized to `size_hw`.

    RGBA images are composited over black (or white with `white_background`).
    The stored size must be an integer multiple of `size_hw`.
    """
    rgb, alpha = read_rgba(path, size_hw)
    if alpha is not None and white_background:
        rgb += 1.0 - alpha[..., None]
    return rgb


def read_rgba(path: Path, size_hw: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an image as premultiplied colour and alpha, at its size or resized to `size_hw`.

    Returns:
        (rgb [H, W, 3] float32: the colour composited over black, alpha [H, W] float32 in [0, 1],
        or None for an image without an alpha channel). Compositing over a background b is
        ``rgb + b * (1 - alpha)``.
    """
    img = _imread(path)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise InputError(f"{path}: expected an RGB or RGBA image, got shape {img.shape}")
    scale = 65535.0 if img.dtype == np.uint16 else (255.0 if img.dtype == np.uint8 else 1.0)
    img = img.astype(np.float32) / scale
    alpha = None
    if img.shape[2] == 4:
        alpha = np.ascontiguousarray(_fit(img[..., 3], size_hw, path, mean=True), dtype=np.float32)
        img = img[..., :3] * img[..., 3:4]
    img = _fit(img, size_hw, path, mean=True)
    return np.ascontiguousarray(img, dtype=np.float32), alpha


def read_id_map(path: Path, size_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read a single-channel uint8/uint16 id map as int32 [H, W] (at `size_hw` if given).

    Palette (mode P) PNGs give their palette indices, grey RGB(A) gives its grey level.
    """
    ids = _imread(path, indices=True)
    if ids.ndim == 3:
        if ids.shape[2] in (3, 4) and np.array_equal(ids[..., 0], ids[..., 1]) and np.array_equal(ids[..., 0], ids[..., 2]):
            ids = ids[..., 0]
        else:
            raise InputError(f"{path}: label maps must be single-channel id images, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"{path}: label maps must hold integer ids, got {ids.dtype}")
    return _fit(ids.astype(np.int32), size_hw, path, mean=False)


def read_depth(path: Path, size_hw: tuple[int, int] | None = None, depth_scale: float = 1.0) -> np.ndarray:
    """Read metric z-depth (.npy float or 16-bit PNG scaled by depth_scale) as float32 [H, W]."""
    path = Path(path)
    if path.suffix == ".npy":
        if not path.exists():
            raise InputError(f"{path}: file not found")
        try:
            d = np.load(path)
        except Exception as e:
            raise InputError(f"{path}: unreadable depth map ({e})") from e
    else:
        d = _imread(path)
    if d.ndim == 3:
        d = d[..., 0]
    d = d.astype(np.float32) * np.float32(depth_scale)
    d[~np.isfinite(d)] = 0.0
    return _fit(d, size_hw, path, mean=False)


def _fit(img: np.ndarray, size_hw: tuple[int, int] | None, path: Path, mean: bool) -> np.ndarray:
    if size_hw is None:
        return img
    h, w = size_hw
    H, W = img.shape[:2]
    if (H, W) == (h, w):
        return img
    fy, fx = H // h if h else 0, W // w if w else 0
    if fy == fx and fy >= 1 and H // fy == h and W // fx == w:
        return resize_area(img, size_hw) if mean else resize_nearest(img, size_hw)
    raise InputError(f"{path}: size {W}x{H} does not match the camera's {w}x{h}")


def write_png(path: Path, img: np.ndarray) -> None:
    """Write a PNG atomically: float [H, W, 3] in [0, 1] or an integer id map."""
    import io

    import imageio.v3 as iio

    from coseg.io.atomic import write_bytes_atomic

    arr = np.asarray(img)
    if np.issubdtype(arr.dtype, np.floating):
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif arr.dtype not in (np.uint8, np.uint16):
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
            raise ValueError(f"{path}: ids outside 0..65535 cannot be stored in a PNG")
        arr = arr.astype(np.uint8 if arr.max(initial=0) < 256 else np.uint16)
    buf = io.BytesIO()
    iio.imwrite(buf, arr, extension=".png")
    write_bytes_atomic(path, buf.getvalue())
