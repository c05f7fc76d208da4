"""Settings of `coseg poses` (photos -> cameras by structure from motion) and the matcher choice."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from coseg.errors import InputError

MATCHERS = ("auto", "exhaustive", "sequential")
#: COLMAP camera models the reader undistorts (docs/scene-formats.md); PINHOLE for undistorted photos.
CAMERA_MODELS = ("SIMPLE_RADIAL", "RADIAL", "OPENCV", "SIMPLE_PINHOLE", "PINHOLE")


@dataclass
class PosesConfig:
    """Every setting of one `coseg poses` run (recorded in SCENE/poses.json)."""

    matcher: str = "auto"
    """"exhaustive" (every pair), "sequential" (each image with its `overlap` successors by name)
    or "auto": sequential for video frames (see `choose_matcher`), exhaustive otherwise."""
    sequential_min_images: int = 100
    """"auto" picks sequential only from this many images on (fewer: exhaustive is cheap enough)."""
    overlap: int = 10
    """Successors by name each image is matched with by the sequential matcher."""
    camera_model: str = "SIMPLE_RADIAL"
    """COLMAP camera model shared by all photos (COLMAP's default; PINHOLE for undistorted photos)."""
    max_image_size: int = 3200
    """SIFT runs on images whose longer side is at most this (COLMAP's default)."""
    max_features: int = 8192
    """Most SIFT features kept per image (COLMAP's default)."""
    threads: int = -1
    """CPU threads of extraction, matching and mapping (-1: all cores)."""
    seed: int = 0
    """Seed of COLMAP's RANSAC and mapper (repeatable runs)."""
    link: str = "copy"
    """How the photos enter SCENE/images: "copy" (a stand-alone scene) or "symlink" (no extra disk)."""
    min_registered: float = 0.5
    """Below this fraction of the photos registered, the run fails (nothing is written)."""

    def __post_init__(self) -> None:
        if self.matcher not in MATCHERS:
            raise InputError(f"--matcher {self.matcher!r}: choose one of {', '.join(MATCHERS)}")
        if self.camera_model not in CAMERA_MODELS:
            raise InputError(f"--camera-model {self.camera_model!r}: choose one of {', '.join(CAMERA_MODELS)}")
        if self.link not in ("copy", "symlink"):
            raise InputError(f"--link {self.link!r}: choose copy or symlink")
        if self.overlap < 1 or self.max_features < 64 or self.max_image_size < 64:
            raise InputError("--overlap must be >= 1, max_features >= 64 and max_image_size >= 64")
        if not 0.0 < self.min_registered <= 1.0:
            raise InputError(f"min_registered {self.min_registered}: must be in (0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)


_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def looks_like_video(stems: list[str]) -> bool:
    """Whether image stems (sorted) are one prefix + a running frame number (frame_0001, ...)."""
    parts = [_NUMBERED.match(s) for s in stems]
    if len(stems) < 2 or not all(parts):
        return False
    prefixes = {m.group(1) for m in parts}
    numbers = sorted(int(m.group(2)) for m in parts)
    steps = {b - a for a, b in zip(numbers, numbers[1:])}
    # Extracted frames are numbered with a constant step (1, or the extraction stride).
    return len(prefixes) == 1 and len(steps) == 1 and steps.pop() > 0


def choose_matcher(stems: list[str], config: PosesConfig) -> tuple[str, str]:
    """(matcher, reason) for the photos with these sorted stems."""
    if config.matcher != "auto":
        return config.matcher, "chosen with --matcher"
    n = len(stems)
    if n >= config.sequential_min_images and looks_like_video(stems):
        return "sequential", f"{n} images numbered like video frames"
    if n >= config.sequential_min_images:
        return "exhaustive", f"{n} images not numbered like video frames (try --matcher sequential for a video)"
    return "exhaustive", f"{n} images (fewer than {config.sequential_min_images}: every pair is matched)"


def image_pairs(n: int, matcher: str, overlap: int) -> list[tuple[int, int]]:
    """Index pairs (i < j) of images in name order to match."""
    if matcher == "exhaustive":
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    return [(i, j) for i in range(n) for j in range(i + 1, min(n, i + 1 + overlap))]
