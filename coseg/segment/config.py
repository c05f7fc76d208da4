"""Settings of the Segmentation Learning Stage (every one lands in config.json).

The stage's own settings (iterations, schedule, seed, pruning, checkpoints)
sit here; everything that belongs to one field sits in that field's settings
class (``field_config``: `coseg.segment.fields.coseg.CoSegConfig`, ...).
Paper values where the paper gives them (6K iterations, Adam lr 1e-3, PCA
to 64-d, λpix 0.8 / λreg 0.2, regulariser on scales 3 and 4); the rest is
ours and documented in docs/method.md. Reading config.json back is strict:
an unknown key is an error (`coseg.segment.settings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coseg.errors import InputError
from coseg.segment.settings import settings_from_dict, settings_to_dict
from coseg.settings import AT_LEAST_1, NON_NEGATIVE, Range, check_settings


@dataclass
class SegmentConfig:
    """Segmentation-stage settings."""

    field: str = "coseg"
    """A registered segmentation field (`coseg.segment.fields`): "coseg" (feature unprojection +
    fusion decoder), "per-gaussian" (Gaussian Grouping baseline) or "label-vote" (training-free
    reference: the raw labels unprojected onto the Gaussians)."""
    field_config: Any = None
    """The field's own settings (an instance of its ``config_class``, or a dict of them); None = its defaults."""
    iterations: int = 6000
    """Training iterations, one training view per iteration (paper: 6K)."""
    lr_schedule: str = "constant"
    """"constant" (the paper's plain Adam) or "cosine": every learning rate decays over the
    iterations as a cosine from its start value to `lr_final_ratio` of it (not in the paper)."""
    lr_final_ratio: float = 0.01
    """Final / initial learning rate of the cosine schedule."""
    attendance_tau: float = 1e-6
    """Attendance-rate threshold τ: Gaussians blended into fewer than τ·V·H·W training pixels are pruned."""
    labels: str = "auto"
    """Raw labels: "semantic" (labels/ class maps), "instance_masks" (per-view masks associated through the
    Gaussians) or "auto" (semantic when present, else masks; `coseg.segment.sources`)."""
    masks: str | None = None
    """Instance-mask folder (default: RUN/masks, else SCENE/masks)."""
    association_iou: float = 0.3
    """Two masks of different views join one segment when their Gaussian sets' IoU reaches this."""
    max_segments: int = 100
    """Most associated segments the field predicts (the largest; the others are not supervised)."""
    seed: int = 0
    """Seed of view order, sampling and initialisation."""
    log_every: int = 50
    """Iterations between progress records."""
    checkpoint_every: int = 1000
    """Iterations between field checkpoints."""

    def __post_init__(self) -> None:
        from coseg.segment.fields import field_class

        if not isinstance(self.field, str):
            raise InputError(f"segmentation setting field={self.field!r}: must be a text value")
        cls = field_class(self.field).config_class
        if self.field_config is None:
            self.field_config = cls()
        elif isinstance(self.field_config, dict):
            self.field_config = settings_from_dict(cls, self.field_config, f"segmentation.field_config ({self.field})")
        elif not isinstance(self.field_config, cls):
            raise InputError(f"field {self.field!r} takes {cls.__name__} settings, "
                             f"got {type(self.field_config).__name__}")
        check_settings(self, "segmentation", {
            "iterations": AT_LEAST_1, "lr_final_ratio": Range(0, 1, open_lo=True),
            "attendance_tau": Range(0, 1, open_hi=True), "seed": NON_NEGATIVE, "log_every": AT_LEAST_1,
            "checkpoint_every": AT_LEAST_1, "association_iou": Range(0, 1, open_lo=True),
            "max_segments": Range(2, 65535),
        }, {"lr_schedule": ("constant", "cosine"), "labels": ("auto", "semantic", "instance_masks")})

    def to_dict(self) -> dict:
        """Every setting as JSON-ready values (the ``segmentation`` section of config.json)."""
        return settings_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "SegmentConfig":
        """Read `to_dict`'s output back; unknown keys are an error."""
        return settings_from_dict(cls, values, "segmentation")

