"""Scene reader for NeRF/Blender and Instant-NGP `transforms*.json` folders.

Layout: `transforms_train.json`, `transforms_test.json` and optionally
`transforms_val.json` (the split is the file), or a single `transforms.json`
(every 8th view by name is test, unless train.txt/test.txt say otherwise).
Poses are OpenGL camera-to-world matrices and are converted to the project's
OpenCV world-to-camera convention. Intrinsics come from `camera_angle_x`
(and `camera_angle_y`) or Instant-NGP's `fl_x fl_y cx cy w h`, given for the
whole file or per frame (a frame's own values win).

Lenses (`coseg.undistort`), global or per frame: `k1 k2 k3 p1 p2` are
OpenCV's radial-tangential model (nerfstudio's `camera_model` OPENCV, the
default); `camera_model` OPENCV_FISHEYE (or Instant-NGP's `"is_fisheye":
true`) reads `k1 k2 k3 k4` as the fisheye model. PINHOLE / SIMPLE_PINHOLE
are accepted; any other model is an error naming it. Frames whose image is
missing are left out and reported (`coseg.scene_settings`).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from coseg.errors import InputError
from coseg.readers import check_pose, every_nth_test, finish_scene, find_image, image_size, opengl_to_opencv
from coseg.scene import Camera, Scene
from coseg.undistort import Distortion

log = logging.getLogger(__name__)

_SPLIT_FILES = (("train", "transforms_train.json"), ("test", "transforms_test.json"),
                ("val", "transforms_val.json"))
_MODELS = ("PINHOLE", "SIMPLE_PINHOLE", "OPENCV", "OPENCV_FISHEYE")


class NerfReader:
    """`transforms*.json` scenes (NeRF synthetic, Instant-NGP, nerfstudio without distortion)."""

    name = "nerf"
    layout = "NeRF/Blender (transforms_train.json + transforms_test.json, or transforms.json)"

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return (path / "transforms_train.json").is_file() or (path / "transforms.json").is_file()

    def read(self, path: Path) -> Scene:
        root = Path(path)
        cameras: list[Camera] = []
        missing: list[Path] = []
        files = [(s, root / f) for s, f in _SPLIT_FILES if (root / f).is_file()]
        if not files:
            single = root / "transforms.json"
            if not single.is_file():
                raise InputError(f"{root}: no transforms_train.json or transforms.json found")
            cameras = _read_transforms(single, "train", missing)
            every_nth_test(cameras)
        else:
            for split, file in files:
                cameras += _read_transforms(file, split, missing)
        cameras = _drop_repeats(cameras)
        _make_names_unique(cameras, root)
        return finish_scene(root, self.name, cameras, missing=list(dict.fromkeys(missing)))


def _read_transforms(path: Path, split: str, missing: list[Path]) -> list[Camera]:
    """Cameras of one transforms file; frames whose image does not exist go to `missing`."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"{path}: unreadable ({e})") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: malformed JSON ({e})") from e
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
        raise InputError(f"{path}: expected an object with a \"frames\" list")
    cams = []
    for i, frame in enumerate(meta["frames"]):
        if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
            raise InputError(f"{path}: frame {i} lacks file_path or transform_matrix")
        where = f"{path}: frame {i} ({frame['file_path']})"
        image = find_image(path.parent, str(frame["file_path"]), f"{path.name} frame {i}")
        if image is None:
            missing.append(path.parent / str(frame["file_path"]))
            continue
        try:
            c2w = np.array(frame["transform_matrix"], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InputError(f"{where}: transform_matrix is not a numeric matrix") from e
        c2w = check_pose(c2w, where)
        width, height, fx, fy, cx, cy = _intrinsics(meta, frame, image, where)
        cams.append(Camera(name=image.stem, image_path=image, width=width, height=height,
                           fx=fx, fy=fy, cx=cx, cy=cy, world_to_camera=opengl_to_opencv(c2w),
                           split=split, distortion=_lens(meta, frame, path.name, where)))
    return cams


def _number(meta: dict, frame: dict, key: str, where: str) -> float | None:
    """The frame's own value of `key`, else the file's, else None; it must be a finite number."""
    value = frame.get(key, meta.get(key))
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise InputError(f"{where}: {key} is not a number ({value!r})") from e
    if not math.isfinite(number):
        raise InputError(f"{where}: {key} is not a finite number ({value!r})")
    return number


def _lens(meta: dict, frame: dict, file: str, where: str) -> Distortion | None:
    """The frame's lens (its own keys win over the file's), None for a pinhole."""
    def get(key) -> float:
        return _number(meta, frame, key, where) or 0.0

    fisheye_flag = frame.get("is_fisheye", meta.get("is_fisheye", False)) is True
    model = str(frame.get("camera_model", meta.get("camera_model",
                                                    "OPENCV_FISHEYE" if fisheye_flag else "OPENCV"))).upper()
    if model not in _MODELS:
        raise InputError(f"{where}: camera_model {model} is not supported (supported: {', '.join(_MODELS)}); "
                         "undistort the images to a pinhole camera first")
    k = {name: get(name) for name in ("k1", "k2", "k3", "k4", "p1", "p2")}
    if model == "OPENCV_FISHEYE":
        if k["p1"] or k["p2"]:
            raise InputError(f"{where}: p1/p2 are not part of the OPENCV_FISHEYE model (it has k1..k4)")
        return Distortion.fisheye(f"{file} camera_model OPENCV_FISHEYE", k["k1"], k["k2"], k["k3"], k["k4"])
    if k["k4"]:
        raise InputError(f"{where}: k4 is only used by camera_model OPENCV_FISHEYE; the perspective "
                         "OPENCV model has k1 k2 k3 p1 p2 (nerfstudio's rule)")
    if model in ("PINHOLE", "SIMPLE_PINHOLE") and any(k.values()):
        raise InputError(f"{where}: camera_model {model} has no distortion, but "
                         f"{', '.join(n for n, v in k.items() if v)} are not zero")
    return Distortion.radial_tangential(file, k1=k["k1"], k2=k["k2"], p1=k["p1"],
                                        p2=k["p2"], k3=k["k3"])


def _intrinsics(meta: dict, frame: dict, image: Path, where: str) -> tuple[int, int, float, float, float, float]:
    """(W, H, fx, fy, cx, cy) of one frame; the frame's own keys win over the file's."""
    def get(key):
        return _number(meta, frame, key, where)

    def angle(key):
        value = get(key)
        if value is not None and not 0.0 < value < math.pi:
            raise InputError(f"{where}: {key} {value!r} is not a field of view in radians (0 < angle < pi)")
        return value

    w, h = get("w"), get("h")
    if w is None or h is None:
        width, height = image_size(image)
    elif w >= 1 and h >= 1 and w == int(w) and h == int(h):
        width, height = int(w), int(h)
    else:
        raise InputError(f"{where}: w, h = {w:g}, {h:g} is not an image size in pixels")
    source = frame if any(k in frame for k in ("fl_x", "camera_angle_x")) else meta
    if source.get("fl_x") is not None:
        fx = get("fl_x")
        fy = get("fl_y") or fx
    elif source.get("camera_angle_x") is not None:
        fx = 0.5 * width / math.tan(0.5 * angle("camera_angle_x"))
        angle_y = angle("camera_angle_y")
        fy = 0.5 * height / math.tan(0.5 * angle_y) if angle_y else fx
    else:
        raise InputError(f"{where}: no intrinsics (expected camera_angle_x or fl_x)")
    cx, cy = get("cx"), get("cy")
    return (width, height, fx, fy, width / 2.0 if cx is None else cx, height / 2.0 if cy is None else cy)


def _drop_repeats(cameras: list[Camera]) -> list[Camera]:
    """Keep the first occurrence of an image listed in several files (e.g. test and val)."""
    seen: set[Path] = set()
    kept = []
    for cam in cameras:
        if cam.image_path in seen:
            log.info("%s is listed again for split %s; keeping its first split", cam.image_path, cam.split)
            continue
        seen.add(cam.image_path)
        kept.append(cam)
    return kept


def _make_names_unique(cameras: list[Camera], root: Path) -> None:
    """Name views by their path below the scene folder (no extension) if stems collide.

    NeRF synthetic scenes reuse stems across splits (train/r_0.png, test/r_0.png);
    labels, GT and split files then refer to views as e.g. `train/r_0`.
    """
    stems = [c.name for c in cameras]
    if len(set(stems)) == len(stems):
        return
    for cam in cameras:
        try:
            cam.name = cam.image_path.relative_to(root).with_suffix("").as_posix()
        except ValueError:
            cam.name = cam.image_path.with_suffix("").as_posix()


def register(registry) -> None:
    """Add the NeRF/Blender scene reader."""
    registry.add("scene_reader", NerfReader.name, NerfReader())
