"""Scenes: posed cameras, images and optional labels, GT, depth and points.

Camera convention (one for the whole project, every reader converts to it):

- ``world_to_camera`` is a 4x4 float64 matrix mapping world points to camera
  coordinates in the OpenCV convention: x right, y down, z forward (the camera
  looks along +z). NeRF/Blender (OpenGL, camera looks along -z, y up) poses are
  converted by flipping the camera's y and z axes.
- Intrinsics ``fx, fy, cx, cy`` in pixels. The centre of pixel (column i,
  row j) is at continuous image coordinates (i + 0.5, j + 0.5), so a camera
  whose principal point is the image centre has cx = W / 2, cy = H / 2
  (the convention of COLMAP, gsplat and the official 3DGS rasteriser).
- Resizing an image from W x H to w x h multiplies fx and cx by w / W and fy
  and cy by h / H (exact for this pixel-centre convention, for any factor).

Readers record each photo's camera as it is (its size, and its lens as a
`coseg.undistort.Distortion`); `coseg.readers.read_scene` turns every camera
into the pinhole camera at the working resolution that the pipeline uses, with
``source`` pointing at the photo's camera, and the Scene serves pixels in that
camera (`coseg.resample`): undistorted and resized, from a cache.

Images load as float32 [H, W, 3] in [0, 1]; label and GT maps as int32 [H, W];
depth as float32 [H, W] metric z-depth (0 = unknown).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from coseg.errors import InputError

if TYPE_CHECKING:
    from coseg.undistort import Distortion

Split = Literal["train", "test", "val"]

VOID_ID = 255
"""Label / GT id of pixels without a label (255 and 65535 are void everywhere)."""

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".JPG", ".JPEG", ".PNG", ".exr", ".tif", ".tiff")


@dataclass
class Camera:
    """One posed view (see module docstring for the convention)."""

    name: str
    """Image stem; labels/gt/depth files are looked up by it."""
    image_path: Path
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    world_to_camera: np.ndarray
    """[4, 4] float64, OpenCV convention."""
    split: Split = "train"
    label_path: Path | None = None
    gt_path: Path | None = None
    depth_path: Path | None = None
    depth_scale: float = 1.0
    """Metric depth = stored value * depth_scale (PNG depth in mm: 0.001)."""
    distortion: "Distortion | None" = None
    """Lens distortion of this camera's pixels; None for a pinhole (every camera a Scene serves)."""
    source: "Camera | None" = None
    """The photo's own camera (its size and lens) when this camera's pixels are resampled from it."""

    def __post_init__(self) -> None:
        self.world_to_camera = np.asarray(self.world_to_camera, np.float64)
        if self.world_to_camera.shape != (4, 4):
            raise InputError(f"{self.image_path}: camera pose must be 4x4, got {self.world_to_camera.shape}")
        if not np.isfinite(self.world_to_camera).all():
            raise InputError(f"{self.image_path}: camera pose contains NaN or inf")
        if not (self.fx > 0 and self.fy > 0) or not np.isfinite([self.fx, self.fy, self.cx, self.cy]).all():
            raise InputError(f"{self.image_path}: focal length must be positive and finite "
                             f"(fx={self.fx}, fy={self.fy})")
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"{self.image_path}: image size must be positive ({self.width}x{self.height})")

    @property
    def K(self) -> np.ndarray:
        """[3, 3] float64 intrinsic matrix."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float64)

    @property
    def camera_to_world(self) -> np.ndarray:
        return np.linalg.inv(self.world_to_camera)

    @property
    def center(self) -> np.ndarray:
        """[3] camera position in world coordinates."""
        return self.camera_to_world[:3, 3].copy()

    def resized(self, width: int, height: int) -> "Camera":
        """This (pinhole) camera with its image resized to `width` x `height` pixels.

        The result's ``source`` is the photo's camera, so its pixels are resampled.
        """
        import dataclasses

        if (width, height) == (self.width, self.height):
            return self
        if self.distortion is not None:
            raise ValueError(f"{self.name}: undistort a camera before resizing it")
        sx, sy = width / self.width, height / self.height
        return dataclasses.replace(self, width=int(width), height=int(height), fx=self.fx * sx,
                                   fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy,
                                   source=self.source if self.source is not None else self)

    def scaled(self, factor: float) -> "Camera":
        """This camera with the image downscaled by `factor` >= 1 (see `working_size`)."""
        return self.resized(working_size(self.width, factor), working_size(self.height, factor))


def working_size(pixels: int, factor: float) -> int:
    """Image side of `pixels` downscaled by `factor`, rounded to the nearest pixel (>= 1)."""
    return max(1, int(np.floor(pixels / factor + 0.5)))


@dataclass
class Scene:
    """A scene folder read by a reader plugin."""

    root: Path
    format: str
    cameras: list[Camera]
    classes: dict[int, str] = field(default_factory=dict)
    """Class id -> name, from classes.json (empty when absent)."""
    points_xyz: np.ndarray | None = None
    """[P, 3] float32 initial points (points3d.ply or COLMAP points3D), or None."""
    points_rgb: np.ndarray | None = None
    """[P, 3] float32 colours in [0, 1] of the initial points, or None."""
    downscale: float = 1.0
    """Working resolution: photo size / served size (1 = the photos' own size)."""
    white_background: bool = False
    cache_dir: Path | None = None
    """Where resampled (undistorted, resized) pixels are cached; None = resample on every load."""
    missing_images: list[Path] = field(default_factory=list)
    """Images the scene's files list but that do not exist (their views were skipped)."""
    reading: dict[str, Any] = field(default_factory=dict)
    """The settings the scene was read with (`coseg.scene_settings.ReadSettings`), for config.json."""

    # ------------------------------------------------------------ splits
    def split(self, name: Split) -> list[Camera]:
        return [c for c in self.cameras if c.split == name]

    @property
    def train_cameras(self) -> list[Camera]:
        return self.split("train")

    @property
    def test_cameras(self) -> list[Camera]:
        return self.split("test")

    def camera(self, name: str) -> Camera:
        for c in self.cameras:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def has_labels(self) -> bool:
        return any(c.label_path is not None for c in self.cameras)

    @property
    def has_gt(self) -> bool:
        return any(c.gt_path is not None for c in self.cameras)

    def extent(self) -> float:
        """Radius of the camera centres around their mean, times 1.1 (3DGS's scene extent)."""
        centers = np.stack([c.center for c in self.train_cameras or self.cameras])
        return float(np.linalg.norm(centers - centers.mean(0), axis=1).max() * 1.1) or 1.0

    # ------------------------------------------------------------ loading
    def load_image(self, cam: Camera) -> np.ndarray:
        """[H, W, 3] float32 in [0, 1] at the camera's (working) size, undistorted."""
        from coseg.io.images import read_rgb
        from coseg.resample import resample

        size = _stored_size(cam)
        return resample(cam, cam.image_path, "rgb",
                        lambda p: read_rgb(p, size, white_background=self.white_background),
                        cache_dir=self.cache_dir, extra_key=f"white={self.white_background}")

    def load_valid_mask(self, cam: Camera) -> np.ndarray | None:
        """[H, W] bool: pixels that see the photo (False on undistortion borders), or None when all do."""
        from coseg.resample import valid_mask

        return valid_mask(cam)

    def load_rgba(self, cam: Camera) -> tuple[np.ndarray, np.ndarray | None]:
        """(premultiplied colour [H, W, 3], alpha [H, W] or None without an alpha channel), float32
        at the camera's (working) size, undistorted as `load_image` (colour and alpha together)."""
        from coseg.io.images import read_rgba
        from coseg.resample import resample

        size = _stored_size(cam)

        def read(path: Path) -> np.ndarray:
            rgb, alpha = read_rgba(path, size)
            return rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], axis=2)

        data = resample(cam, cam.image_path, "rgb", read, cache_dir=self.cache_dir, extra_key="rgba")
        if data.shape[2] == 4:
            return np.ascontiguousarray(data[..., :3]), np.ascontiguousarray(data[..., 3])
        return data, None

    def load_labels(self, cam: Camera) -> np.ndarray | None:
        """[H, W] int32 raw zero-shot label ids, or None when the view has none."""
        return self._load_ids(cam, cam.label_path)

    def load_gt(self, cam: Camera) -> np.ndarray | None:
        """[H, W] int32 ground-truth class ids, or None."""
        return self._load_ids(cam, cam.gt_path)

    def load_depth(self, cam: Camera) -> np.ndarray | None:
        """[H, W] float32 metric z-depth (0 = unknown), or None."""
        if cam.depth_path is None:
            return None
        from coseg.io.images import read_depth
        from coseg.resample import resample

        size = _stored_size(cam)
        return resample(cam, cam.depth_path, "depth", lambda p: read_depth(p, size, cam.depth_scale),
                        fill=0.0, cache_dir=self.cache_dir, extra_key=f"scale={cam.depth_scale}")

    def load_id_map(self, cam: Camera, path: Path, fill: int = VOID_ID) -> np.ndarray:
        """[H, W] int32 map of ids at the photo's size (e.g. instance masks) as `cam` sees it.

        Args:
            cam: the view.
            path: the map, at the photo's size (or already at the camera's size).
            fill: id of pixels that see no part of the photo (undistortion borders).
        """
        from coseg.io.images import read_id_map
        from coseg.resample import resample

        size = _stored_size(cam)
        return resample(cam, Path(path), "ids", lambda p: read_id_map(p, size), fill=fill,
                        cache_dir=self.cache_dir)

    def _load_ids(self, cam: Camera, path: Path | None) -> np.ndarray | None:
        if path is None:
            return None
        ids = self.load_id_map(cam, path)
        if self.classes:
            max_id = max(self.classes)
            bad = ids[(ids < 0) | (ids > max_id)]
            # 255/65535 are the conventional "void" ids and are allowed.
            bad = bad[(bad != 255) & (bad != 65535)]
            if bad.size:
                raise InputError(f"{path}: label id {int(bad[0])} is out of range "
                                 f"(classes.json defines ids 0..{max_id})")
        return ids


def _stored_size(cam: Camera) -> tuple[int, int] | None:
    """Size a file is read at: its own when resampled from the photo's camera, else the camera's
    (the file may then be an integer multiple of it, as a reader that scales cameras itself gives)."""
    return None if cam.source is not None else (cam.height, cam.width)


def read_classes_json(path: Path) -> dict[int, str]:
    """Read `classes.json` ({"id": "name"} or a list of names)."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read classes ({e})") from e
    if isinstance(raw, list):
        return {i: str(n) for i, n in enumerate(raw)}
    try:
        return {int(k): str(v) for k, v in raw.items()}
    except (AttributeError, ValueError) as e:
        raise InputError(f"{path}: expected {{\"id\": \"name\", ...}}") from e
