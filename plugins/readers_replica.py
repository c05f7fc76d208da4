"""Scene reader for Replica sequences as rendered by Semantic-NeRF.

Layout: `rgb/rgb_N.png`, `traj_w_c.txt` (line N holds frame N's 4x4
camera-to-world matrix, 16 numbers row-major), optional
`semantic_class/semantic_class_N.png` (-> ground truth) and
`depth/depth_N.png` (uint16, 1 unit = 1 mm). Semantic-NeRF trains on these
poses with its "opencv" ray convention (x right, y down, z forward), so they
are the project's convention already and are only inverted. Its renders use a
90 degree horizontal field of view: fx = fy = W / 2, cx = W / 2, cy = H / 2.

Default split, following Semantic-NeRF: frames with N % 5 == 0 train,
N % 5 == 2 test, all others "val" (kept for viewing, used for neither);
`train.txt` / `test.txt` override it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from coseg.errors import InputError
from coseg.readers import check_pose, finish_scene, image_size
from coseg.scene import Camera, Scene

_FRAME = re.compile(r"rgb_(\d+)\.png$")
HFOV_DEG = 90.0
DEPTH_SCALE = 0.001
"""Metres per unit of Semantic-NeRF's 16-bit depth PNGs (millimetres)."""


class ReplicaReader:
    """Semantic-NeRF's Replica renders."""

    name = "replica"
    layout = "Replica / Semantic-NeRF (traj_w_c.txt + rgb/rgb_N.png)"

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return (path / "traj_w_c.txt").is_file() and (path / "rgb").is_dir()

    def read(self, path: Path) -> Scene:
        root = Path(path)
        frames = sorted((int(m.group(1)), m.group(1), p) for p in (root / "rgb").glob("rgb_*.png")
                        if (m := _FRAME.search(p.name)))
        if not frames:
            raise InputError(f"{root / 'rgb'}: no rgb_N.png frames found")
        traj = root / "traj_w_c.txt"
        poses = read_trajectory(traj)
        width, height = image_size(frames[0][2])
        f = width / 2.0 / math.tan(math.radians(HFOV_DEG / 2.0))
        cameras = []
        for n, digits, image in frames:
            if n >= len(poses):
                raise InputError(f"{image}: frame {n} has no pose ({traj.name} has {len(poses)} lines)")
            c2w = check_pose(poses[n], f"{traj}: line {n + 1} (frame {image.name})")
            gt = root / "semantic_class" / f"semantic_class_{digits}.png"
            depth = root / "depth" / f"depth_{digits}.png"
            cameras.append(Camera(
                name=image.stem, image_path=image, width=width, height=height,
                fx=f, fy=f, cx=width / 2.0, cy=height / 2.0, world_to_camera=np.linalg.inv(c2w),
                split="train" if n % 5 == 0 else "test" if n % 5 == 2 else "val",
                gt_path=gt if gt.is_file() else None,
                depth_path=depth if depth.is_file() else None, depth_scale=DEPTH_SCALE,
            ))
        return finish_scene(root, self.name, cameras)


def read_trajectory(path: Path) -> list[np.ndarray]:
    """Camera-to-world matrices, one [4, 4] float64 per non-empty line of `path`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: unreadable ({e})") from e
    poses = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError as e:
            raise InputError(f"{path}: line {i + 1} is not numeric ({e})") from e
        if len(values) != 16:
            raise InputError(f"{path}: line {i + 1} has {len(values)} numbers, expected 16 (a 4x4 matrix)")
        poses.append(np.array(values, np.float64).reshape(4, 4))
    return poses


def register(registry) -> None:
    """Add the Replica (Semantic-NeRF) scene reader."""
    registry.add("scene_reader", ReplicaReader.name, ReplicaReader())
