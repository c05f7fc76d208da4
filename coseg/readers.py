"""Reading scene folders: layout detection and the steps every reader shares.

`read_scene` asks every ``scene_reader`` plugin of the registry whether it
recognises the folder (built-ins: ``colmap``, ``nerf``, ``replica``,
``scannet``; see docs/scene-formats.md) and lets the first that does read it.
The helpers below are used by all built-in readers so that the optional
files beside a scene (``labels/``, ``gt/``, ``depth/*.npy``, ``classes.json``,
``points3d.ply``), split files (``train.txt`` / ``test.txt``) and missing
images behave the same for every format.

Readers return the photos' own cameras (size, lens); `read_scene` then applies
what every format shares (`coseg.scene_settings`): the missing-image policy,
undistortion to pinhole cameras and the working resolution, as set by
`ReadSettings`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from coseg.errors import InputError
from coseg.scene import IMAGE_EXTS, Camera, Scene, read_classes_json
from coseg.scene_settings import ReadSettings, prepare_scene

log = logging.getLogger(__name__)


def detect_format(path: Path) -> str:
    """Name of the first registered scene reader that recognises `path`.

    Raises:
        InputError: `path` is not a folder, or no reader recognises it (the
            message lists the layouts looked for).
    """
    from coseg.plugins import registry

    path = _scene_dir(path)
    readers = registry().items("scene_reader")
    matches = [name for name, reader in readers if _safe_detect(reader, path)]
    if not matches:
        looked = "; ".join(getattr(r, "layout", name) for name, r in readers) or "no readers registered"
        raise InputError(f"{path}: not a scene folder this program recognises (looked for: {looked})")
    if len(matches) > 1:
        log.info("%s matches the layouts %s; reading it as %s (choose another with format=)",
                 path, ", ".join(matches), matches[0])
    return matches[0]


def read_scene(path: Path, downscale: float | None = None, format: str | None = None,
               settings: ReadSettings | None = None, cache: Path | None = None) -> Scene:
    """Read a scene folder into a `Scene` of pinhole cameras at the working resolution.

    Args:
        path: the scene folder.
        downscale: photo size / working size (>= 1, need not be an integer);
            overrides ``settings.downscale``. None: `settings` decide (by
            default the automatic working resolution).
        format: a scene reader name (e.g. "colmap") to skip detection.
        settings: working resolution, undistortion and missing-image policy.
        cache: folder for resampled pixels (None: resample on every load).

    Returns:
        The scene, cameras in the convention of `coseg.scene`.
    """
    import dataclasses

    from coseg.plugins import registry

    path = _scene_dir(path)
    settings = settings or ReadSettings()
    if downscale is not None:  # replace() checks the value (ReadSettings.__post_init__)
        settings = dataclasses.replace(settings, downscale=downscale, resolution=None)
    name = format or detect_format(path)
    try:
        reader = registry().get("scene_reader", name)
    except KeyError as e:
        raise InputError(f"{path}: {e.args[0]}") from None
    scene = reader.read(path)
    if not isinstance(scene, Scene):
        raise InputError(f"{path}: scene reader {name!r} returned {type(scene).__name__}, not a Scene")
    return prepare_scene(scene, settings, cache)


def read_run_scene(run, scene_path: Path | None = None) -> Scene:
    """The scene of a run, read the way config.json records (path, working resolution, ...).

    Args:
        run: a `coseg.run.RunDir`.
        scene_path: read this folder instead of the recorded one (same settings).
    """
    header = run.read_config().get("scene") or {}
    path = scene_path or header.get("path")
    if not path:
        raise InputError(f"{run.config_path}: records no scene; pass the scene folder")
    try:
        settings = ReadSettings.from_dict(header)
    except (TypeError, ValueError) as e:
        raise InputError(f"{run.config_path}: unreadable scene settings ({e})") from None
    cache = Path(header["cache"]) if header.get("cache") else run.path / "cache" / "pixels"
    return read_scene(Path(path), settings=settings, cache=cache)


def _scene_dir(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: scene folder not found")
    if not path.is_dir():
        raise InputError(f"{path}: expected a scene folder, got a file")
    return path


def _safe_detect(reader, path: Path) -> bool:
    try:
        return bool(reader.detect(path))
    except Exception as e:  # a third-party reader's detect must not break detection
        log.warning("scene reader %r failed to inspect %s: %s", getattr(reader, "name", reader), path, e)
        return False


# ------------------------------------------------------------ frames
def find_image(base: Path, rel: str, where: str) -> Path | None:
    """The image file `rel` under `base`, or None when it does not exist.

    Args:
        base: folder `rel` is relative to.
        rel: relative path, possibly starting with "./" and possibly without
            an extension (NeRF `file_path`; `IMAGE_EXTS` are tried in order).
        where: what refers to the image, for the message when `rel` is no file name at all.

    Raises:
        InputError: `rel` is empty or holds a NUL byte.
    """
    try:
        path = base / rel
        if path.is_file():
            return path
        suffix = path.suffix
    except ValueError:  # a NUL byte or an empty name: not a file name at all
        raise InputError(f"{base}: {rel!r} is not an image file name (referenced by {where})") from None
    if not path.name:
        raise InputError(f"{path}: not an image file name (referenced by {where})")
    if suffix not in IMAGE_EXTS:
        for ext in IMAGE_EXTS:
            candidate = path.with_name(path.name + ext)
            if candidate.is_file():
                return candidate
    return None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image file's header, without decoding pixels."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:  # PIL raises several types for a corrupt header
        error = e
    if path.suffix.lower() == ".exr":  # PIL cannot read EXR; imageio may have a plugin
        try:
            import imageio.v3 as iio

            shape = iio.improps(path).shape
            return int(shape[1]), int(shape[0])
        except Exception as e:
            error = e
    raise InputError(f"{path}: unreadable image ({type(error).__name__}: {error})") from error


def check_pose(matrix: np.ndarray, where: str) -> np.ndarray:
    """Return `matrix` as [4, 4] float64 (a [3, 4] gets [0 0 0 1]); reject NaN/inf."""
    m = np.asarray(matrix, np.float64)
    if m.shape == (3, 4):
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    if m.shape != (4, 4):
        raise InputError(f"{where}: pose must be a 4x4 matrix, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise InputError(f"{where}: pose contains NaN or inf")
    if abs(np.linalg.det(m[:3, :3])) < 1e-9:
        raise InputError(f"{where}: pose rotation is singular")
    return m


def opengl_to_opencv(camera_to_world: np.ndarray) -> np.ndarray:
    """[4, 4] OpenGL camera-to-world (y up, looks along -z) -> OpenCV world_to_camera."""
    return np.linalg.inv(camera_to_world @ np.diag([1.0, -1.0, -1.0, 1.0]))


# ------------------------------------------------------------ splits
def every_nth_test(cameras: Sequence[Camera], n: int = 8) -> None:
    """Mark cameras whose index in name order is a multiple of `n` as test, the rest train."""
    order = sorted(range(len(cameras)), key=lambda i: cameras[i].name)
    for rank, i in enumerate(order):
        cameras[i].split = "test" if rank % n == 0 else "train"


def apply_split_files(root: Path, cameras: Sequence[Camera]) -> bool:
    """Override the splits with `root/train.txt` and/or `root/test.txt` when present.

    Each file lists image names (with or without extension, or camera names),
    one per line; blank lines and lines starting with '#' are ignored. With
    only test.txt the other views train; with only train.txt the others are
    test; with both, views in neither become "val". Returns whether a file was used.
    """
    lists = {s: _read_name_list(root / f"{s}.txt") for s in ("train", "test")}
    if lists["train"] is None and lists["test"] is None:
        return False
    keys: dict[str, Camera] = {}
    for cam in cameras:
        for k in (cam.name, cam.name + cam.image_path.suffix, cam.image_path.name,
                  _relative(cam.image_path, root)):
            keys.setdefault(k, cam)
    chosen: dict[int, str] = {}
    for split, names in lists.items():
        if names is None:
            continue
        for lineno, name in names:
            cam = keys.get(name)
            if cam is None:
                raise InputError(f"{root / f'{split}.txt'}:{lineno}: no view named {name!r} in this scene")
            if chosen.get(id(cam), split) != split:
                raise InputError(f"{root / f'{split}.txt'}:{lineno}: view {name!r} is listed in "
                                 "both train.txt and test.txt")
            chosen[id(cam)] = split
    rest = ("val" if lists["train"] is not None and lists["test"] is not None
            else "test" if lists["train"] is not None else "train")
    for cam in cameras:
        cam.split = chosen.get(id(cam), rest)
    return True


def _read_name_list(path: Path) -> list[tuple[int, str]] | None:
    if not path.is_file():
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: unreadable split file ({e})") from e
    return [(i + 1, s.strip()) for i, s in enumerate(lines) if s.strip() and not s.strip().startswith("#")]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


# ------------------------------------------------------------ scene assembly
def attach_optional_files(root: Path, cameras: Sequence[Camera]) -> None:
    """Point cameras at `labels/<name>.png`, `gt/<name>.png`, `depth/<name>.npy` when present.

    These files take precedence over a format's own GT or depth maps.
    """
    for cam in cameras:
        label = root / "labels" / f"{cam.name}.png"
        if label.is_file():
            cam.label_path = label
        gt = root / "gt" / f"{cam.name}.png"
        if gt.is_file():
            cam.gt_path = gt
        depth = root / "depth" / f"{cam.name}.npy"
        if depth.is_file():
            cam.depth_path, cam.depth_scale = depth, 1.0


def finish_scene(root: Path, fmt: str, cameras: list[Camera],
                 points: tuple[np.ndarray, np.ndarray | None] | None = None,
                 scene_type: type[Scene] = Scene, missing: Sequence[Path] = (), **scene_fields) -> Scene:
    """Apply the steps shared by every reader and build the `Scene`.

    Attaches optional files, applies split files, reads `classes.json` and
    `points3d.ply` (which wins over the format's own `points`).

    Args:
        root: scene folder.
        fmt: reader name recorded in `Scene.format`.
        cameras: the photos' cameras (their size and lens) with default splits assigned.
        points: the format's own (xyz [P, 3], rgb [P, 3] or None) points, if any.
        scene_type: `Scene` or a subclass (a reader that needs custom loading).
        missing: images the format's files list that do not exist (their views are left out).
        **scene_fields: further `Scene` fields (e.g. white_background).
    """
    if not cameras and missing:
        raise InputError(f"{root}: none of the {len(missing)} images the scene lists exist "
                         f"(first: {missing[0]})")
    if not cameras:
        raise InputError(f"{root}: the scene has no views")
    attach_optional_files(root, cameras)
    apply_split_files(root, cameras)
    classes = read_classes_json(root / "classes.json") if (root / "classes.json").is_file() else {}
    if (root / "points3d.ply").is_file():
        from coseg.io.ply import read_point_cloud

        points = read_point_cloud(root / "points3d.ply")
    xyz, rgb = points if points is not None else (None, None)
    if xyz is not None and not np.isfinite(xyz).all():  # the NaN policy of docs/data-safety.md
        ok = np.isfinite(xyz).all(axis=1)
        log.warning("%s: dropped %d of %d initial points with NaN or inf positions", root, int((~ok).sum()), len(ok))
        xyz, rgb = xyz[ok], None if rgb is None else rgb[ok]
    return scene_type(root=root, format=fmt, cameras=list(cameras), classes=classes, points_xyz=xyz,
                      points_rgb=rgb, missing_images=list(missing), **scene_fields)
