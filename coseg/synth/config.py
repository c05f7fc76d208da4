"""Settings of the demo scene generator."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from coseg.errors import InputError
from coseg.settings import NON_NEGATIVE, check_settings
from coseg.synth.labels import LabelNoiseConfig

KINDS = ("room", "object", "outdoor")
SKIES = ("gradient", "white")
MAX_SIZE = 4096


@dataclass
class SynthConfig:
    """What `coseg.synth.generate` renders."""

    seed: int = 0
    """Seeds the layout, cameras, label noise and points: same seed, same bytes."""
    views: int = 64
    """Training views."""
    test_views: int = 16
    """Test views, interleaved along the same camera path."""
    width: int = 320
    """Image width in pixels."""
    height: int = 240
    """Image height in pixels."""
    kind: str = "room"
    """"room" (a furnished room seen from inside), "object" (an object group on black) or
    "outdoor" (the object group on paving under an open sky)."""
    sky: str = "gradient"
    """Sky of the "outdoor" kind: "gradient" (near-white horizon to pale blue) or "white"."""
    hfov_deg: float = 70.0
    """Horizontal field of view in degrees."""
    points: int = 4000
    """Points in points3d.ply, sampled from the training views' depth."""
    point_noise: float = 0.01
    """Standard deviation (metres) of the Gaussian noise added to every point, like an SfM cloud's."""
    texture_detail: float = 0.0
    """Contrast (0-1) of a fine 3 cm value-noise texture layer that gives SIFT enough keypoints for
    structure from motion (`coseg poses`); 0 keeps the demo scene's coarse textures."""
    labels: LabelNoiseConfig = field(default_factory=LabelNoiseConfig)
    """Strengths of the simulated zero-shot label errors."""

    def validate(self) -> None:
        """Raise InputError naming the first bad setting (types first, then the meaningful ranges)."""
        check_settings(self, "synth", {"seed": NON_NEGATIVE})
        if self.kind not in KINDS:
            raise InputError(f"--kind {self.kind!r}: choose one of {', '.join(KINDS)}")
        if self.sky not in SKIES:
            raise InputError(f"--sky {self.sky!r}: choose one of {', '.join(SKIES)}")
        if self.views < 2:
            raise InputError(f"--views {self.views}: at least 2 training views are needed "
                             "(multi-view reconstruction and cross-view label noise)")
        if self.test_views < 1:
            raise InputError(f"--test-views {self.test_views}: at least 1 test view is needed")
        if not (8 <= self.width <= MAX_SIZE and 8 <= self.height <= MAX_SIZE):
            raise InputError(f"--size {self.width}x{self.height}: width and height must be 8..{MAX_SIZE} pixels")
        if not 10.0 <= self.hfov_deg <= 150.0:
            raise InputError(f"hfov {self.hfov_deg}: must be 10..150 degrees")
        if not 0.0 <= self.texture_detail <= 1.0:
            raise InputError(f"--texture-detail {self.texture_detail}: must be in 0..1")
        if self.points < 1 or self.point_noise < 0:
            raise InputError(f"points {self.points} / point noise {self.point_noise}: "
                             "need at least 1 point and a noise >= 0")
        try:
            self.labels.validate()
        except ValueError as e:
            raise InputError(str(e)) from None

    def to_dict(self) -> dict:
        """Every setting, as JSON-ready values."""
        return asdict(self)


def parse_size(text: str) -> tuple[int, int]:
    """Parse "WxH" (e.g. "320x240") into (width, height).

    Raises:
        InputError: not of that form, or a side is outside 8..MAX_SIZE.
    """
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise InputError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 320x240")
    w, h = int(m.group(1)), int(m.group(2))
    if not (8 <= w <= MAX_SIZE and 8 <= h <= MAX_SIZE):
        raise InputError(f"--size {text}: width and height must be 8..{MAX_SIZE} pixels")
    return w, h
