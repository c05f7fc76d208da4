"""How a scene's photos become the pipeline's cameras: missing images, undistortion, working resolution.

`prepare_scene` is the step `coseg.readers.read_scene` applies to what every
reader returns (the photos' own cameras):

1. Frames whose image file is missing: skipped with one warning line naming
   them (the behaviour users of Instant-NGP and nerfstudio know), or an error
   with ``missing_images="error"``.
2. Cameras with lens distortion become pinhole cameras (`coseg.undistort`);
   their pixels are undistorted when loaded.
3. The working resolution: every camera is downscaled by one factor, given
   (``downscale``), derived from a longest side in pixels (``resolution``) or
   chosen automatically so that the longest side is at most ``max_side``
   (`AUTO_MAX_SIDE`, sized so that a CPU build of a 50-view capture takes
   about 20 minutes; docs/benchmarks.md has the measurement).

The resolved settings are recorded in a run's config.json (``scene``
section) so every later stage reads the scene the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal


from coseg.errors import InputError
from coseg.scene import Camera, Scene
from coseg.settings import AT_LEAST_1, UNIT, Range, check_settings

log = logging.getLogger(__name__)

AUTO_MAX_SIDE = 400
"""Default cap on the working images' longest side in pixels (see docs/benchmarks.md)."""
_LISTED = 8
"""Missing images named in the warning before "... and N more"."""


@dataclass
class ReadSettings:
    """How a scene folder is read (the ``scene`` section of a run's config.json)."""

    downscale: float | None = None
    """Photo size / working size (>= 1, any number); None = from `resolution` or automatic."""
    resolution: int | None = None
    """Longest side of the working images in pixels (used when `downscale` is None)."""
    max_side: int = AUTO_MAX_SIDE
    """Automatic working resolution: photos whose longest side exceeds this are downscaled to it."""
    undistort_alpha: float = 0.0
    """0 = undistorted images keep only pixels that see the photo (crop); 1 = all of the photo
    (borders outside it are masked out of the losses); between: OpenCV's blend."""
    missing_images: Literal["skip", "error"] = "skip"
    """Frames whose image file is missing: skip them with a warning, or stop with an error."""

    def __post_init__(self) -> None:
        check_settings(self, "scene reading", {"downscale": AT_LEAST_1, "resolution": Range(8),
                                               "max_side": Range(8), "undistort_alpha": UNIT},
                       {"missing_images": ("skip", "error")})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ReadSettings":
        """From a config.json scene section (other keys, such as the path, are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def factor(self, cameras: list[Camera]) -> tuple[float, str]:
        """The downscale factor for these cameras, and how it was chosen (for the log)."""
        longest = max(max(c.width, c.height) for c in cameras)
        if self.downscale is not None:
            return float(self.downscale), "as set"
        if self.resolution is not None:
            if self.resolution > longest:
                raise InputError(f"resolution {self.resolution} px exceeds the photos' longest side "
                                 f"({longest} px); working images are never upscaled")
            return longest / self.resolution, f"longest side set to {self.resolution} px"
        if longest <= self.max_side:
            return 1.0, "the photos' own size"
        return longest / self.max_side, (f"automatic: longest side capped at {self.max_side} px; "
                                         "choose another with --downscale or --resolution")


def prepare_scene(scene: Scene, settings: ReadSettings, cache: Path | None = None) -> Scene:
    """Apply the missing-image policy, undistortion and working resolution to a read scene.

    Args:
        scene: as a reader returned it (the photos' cameras).
        settings: validated settings.
        cache: folder for resampled pixels, or None.

    Returns:
        A scene of pinhole cameras at the working resolution.
    """
    _report_missing(scene, settings.missing_images)
    pinholes: dict[tuple, Camera] = {}
    cams = [_undistorted(c, settings.undistort_alpha, pinholes) for c in scene.cameras]
    factor, why = settings.factor(cams)
    served = [c.scaled(factor) for c in cams]
    reading = {"downscale": factor, "undistort_alpha": float(settings.undistort_alpha),
               "missing_images": settings.missing_images}
    out = dataclasses.replace(scene, cameras=served, downscale=factor, reading=reading,
                              cache_dir=_cache_folder(scene, cache))
    sizes = sorted({(c.width, c.height) for c in served})
    photo = sorted({(c.width, c.height) for c in scene.cameras})
    log.info("read %s scene %s: %d views (%d train, %d test); working resolution %s for photos of %s "
             "(downscale %.4g, %s)", scene.format, scene.root, len(served), len(out.train_cameras),
             len(out.test_cameras), _sizes(sizes), _sizes(photo), factor, why)
    return out


def _undistorted(cam: Camera, alpha: float, done: dict[tuple, Camera]) -> Camera:
    """`cam` as a pinhole camera; cameras with one lens and intrinsics share one computation."""
    if cam.distortion is None:
        return cam
    from coseg.undistort import undistorted_camera

    key = (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy, cam.distortion.model, cam.distortion.coeffs)
    first = done.get(key)
    if first is None:
        first = done[key] = undistorted_camera(cam, alpha)
        log.info("undistorting the views of lens %s (%dx%d) to pinhole fx=%.2f fy=%.2f cx=%.2f cy=%.2f "
                 "(undistort_alpha %g)", cam.distortion.describe(), cam.width, cam.height,
                 first.fx, first.fy, first.cx, first.cy, alpha)
    return dataclasses.replace(cam, fx=first.fx, fy=first.fy, cx=first.cx, cy=first.cy,
                               distortion=None, source=cam)


def _report_missing(scene: Scene, policy: str) -> None:
    missing = scene.missing_images
    if not missing:
        return
    names = ", ".join(_relative(p, scene.root) for p in missing[:_LISTED])
    if len(missing) > _LISTED:
        names += f" ... and {len(missing) - _LISTED} more"
    listed = len(missing) + len(scene.cameras)
    if policy == "error":
        raise InputError(f"{scene.root}: {len(missing)} of {listed} listed images are missing: {names} "
                         "(use missing_images=skip / --missing-images skip to leave those views out)")
    log.warning("%s: %d of %d listed images are missing, their views are skipped: %s "
                "(--missing-images error stops instead)", scene.root, len(missing), listed, names)


def _cache_folder(scene: Scene, cache: Path | None) -> Path | None:
    if cache is None:
        return None
    from coseg.io.safety import check_output, scene_inputs

    return check_output(cache, scene_inputs(scene), "--cache")


def _sizes(sizes: list[tuple[int, int]]) -> str:
    return ", ".join(f"{w}x{h}" for w, h in sizes)


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def describe_cameras(scene: Scene) -> list[dict[str, Any]]:
    """One entry per distinct photo camera (size, lens): what `coseg info` shows.

    Returns:
        Dicts with "views", "photo size", "lens", and for distorted lenses the
        pinhole intrinsics the photos are undistorted to and the shares of the
        photo kept and of the undistorted pixels that see it.
    """
    from coseg.undistort import check_coverage

    groups: dict[tuple, dict[str, Any]] = {}
    for cam in scene.cameras:
        src = cam.source if cam.source is not None else cam
        d = src.distortion
        key = (src.width, src.height, d)
        if key in groups:
            groups[key]["views"] += 1
            continue
        entry: dict[str, Any] = {"views": 1, "photo size": f"{src.width}x{src.height}",
                                 "lens": "pinhole" if d is None else d.describe()}
        if d is not None:
            pinhole = cam.resized(src.width, src.height)
            kept, seeing = check_coverage(src, pinhole)
            entry["undistorted to"] = (f"pinhole fx={pinhole.fx:.2f} fy={pinhole.fy:.2f} "
                                       f"cx={pinhole.cx:.2f} cy={pinhole.cy:.2f}")
            entry["photo kept"] = f"{100 * kept:.1f}%"
            entry["pixels seeing the photo"] = f"{100 * seeing:.1f}%"
        groups[key] = entry
    return list(groups.values())
