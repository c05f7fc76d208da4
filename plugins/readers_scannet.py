"""Scene reader for ScanNet frames exported by ScanNet's SensReader.

Layout: `color/N.jpg`, `pose/N.txt` (4x4 camera-to-world, OpenCV camera
axes), `intrinsic/intrinsic_color.txt` (4x4, fx fy cx cy of the colour
camera), optional `depth/N.png` (uint16 millimetres, usually 640x480 while
colour is 1296x968) and `label-filt/N.png` (-> ground truth, colour size).
Frames whose pose holds -inf/NaN (tracking lost) are skipped with one
warning. Depth maps are resampled to the colour camera's size with nearest
sampling when loaded (`ScanNetScene.load_depth`); they are not registered to
the colour camera beyond that, as in Semantic-NeRF's ScanNet loader.

Default split: valid frames sorted by N, every 8th (rank % 8 == 0) is test;
`train.txt` / `test.txt` override it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from coseg.errors import InputError
from coseg.readers import finish_scene, image_size
from coseg.scene import Camera, Scene

log = logging.getLogger(__name__)

DEPTH_SCALE = 0.001
"""Metres per unit of ScanNet's 16-bit depth PNGs (millimetres)."""


class ScanNetScene(Scene):
    """A `Scene` whose PNG depth maps may differ in size from the colour images."""

    def load_depth(self, cam: Camera) -> np.ndarray | None:
        """[H, W] float32 metric z-depth at the camera's size (nearest resampling)."""
        if cam.depth_path is None or cam.depth_path.suffix == ".npy":
            return super().load_depth(cam)
        from coseg.io.images import read_depth, resize_nearest

        return resize_nearest(read_depth(cam.depth_path, None, cam.depth_scale), (cam.height, cam.width))


class ScanNetReader:
    """ScanNet sequences exported to color/ depth/ pose/ intrinsic/ label-filt/."""

    name = "scannet"
    layout = "ScanNet export (color/, pose/, intrinsic/intrinsic_color.txt)"

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return all((path / d).is_dir() for d in ("color", "pose", "intrinsic"))

    def read(self, path: Path) -> Scene:
        root = Path(path)
        frames = sorted((int(p.stem), p) for p in (root / "color").iterdir()
                        if p.stem.isdigit() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not frames:
            raise InputError(f"{root / 'color'}: no colour frames (N.jpg) found")
        fx, fy, cx, cy = read_intrinsics(root / "intrinsic" / "intrinsic_color.txt")
        width, height = image_size(frames[0][1])
        cameras, invalid = [], 0
        for _, image in frames:
            stem = image.stem  # zero-padded exports keep their padding everywhere
            c2w = _read_pose(root / "pose" / f"{stem}.txt")
            if not np.isfinite(c2w).all():
                invalid += 1
                continue
            gt = root / "label-filt" / f"{stem}.png"
            depth = root / "depth" / f"{stem}.png"
            cameras.append(Camera(
                name=stem, image_path=image, width=width, height=height, fx=fx, fy=fy, cx=cx, cy=cy,
                world_to_camera=np.linalg.inv(c2w),
                split="test" if len(cameras) % 8 == 0 else "train",
                gt_path=gt if gt.is_file() else None,
                depth_path=depth if depth.is_file() else None, depth_scale=DEPTH_SCALE,
            ))
        if invalid:
            log.warning("%s: skipped %d of %d frames whose pose is invalid (-inf/NaN)",
                        root / "pose", invalid, len(frames))
        return finish_scene(root, self.name, cameras, scene_type=ScanNetScene)


def read_intrinsics(path: Path) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) from a ScanNet 4x4 (or 3x3) intrinsic matrix file."""
    m = _read_matrix(path)
    if m.shape not in ((4, 4), (3, 3)) or not np.isfinite(m).all() or m[0, 0] <= 0 or m[1, 1] <= 0:
        raise InputError(f"{path}: expected a 4x4 intrinsic matrix with positive focal lengths")
    return float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2])


def _read_pose(path: Path) -> np.ndarray:
    m = _read_matrix(path)
    if m.shape != (4, 4):
        raise InputError(f"{path}: expected a 4x4 camera-to-world matrix, got shape {m.shape}")
    if np.isfinite(m).all() and abs(np.linalg.det(m[:3, :3])) < 1e-9:
        raise InputError(f"{path}: pose rotation is singular")
    return m


def _read_matrix(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        rows = [[float(v) for v in line.split()] for line in path.read_text().splitlines() if line.strip()]
        return np.array(rows, np.float64)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path}: unreadable matrix ({e})") from e


def register(registry) -> None:
    """Add the ScanNet scene reader."""
    registry.add("scene_reader", ScanNetReader.name, ScanNetReader())
