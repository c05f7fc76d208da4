"""Settings of the spatial-encoder pretraining (`coseg pretrain-spatial`) and where its weights go.

Kept apart from `coseg.segment.pretrain` (torch, numba) so that the command
line can show the defaults in its help without loading the trainer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from coseg import resources_dir

#: The encoder weights the project ships (written by `coseg pretrain-spatial`, read by the CoSeg field).
SHIPPED_WEIGHTS = resources_dir() / "weights" / "randla_synth.pt"


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of the spatial-encoder pretraining."""

    scenes: int = 8
    """Procedural training rooms."""
    val_scenes: int = 2
    """Held-out rooms for the score."""
    points_per_scene: int = 200_000
    """Surface points sampled per room (area-weighted)."""
    crop_points: int = 4096
    """Points per training crop (one step = one crop)."""
    steps: int = 1000
    """Optimisation steps."""
    lr: float = 5e-3
    """Adam learning rate."""
    noise: float = 0.01
    """Standard deviation of the position jitter, metres."""
    val_crops: int = 12
    """Crops per validation room."""
    seed: int = 0
    """Seed of the scene generation, crops and initialisation."""

    def __post_init__(self) -> None:
        from coseg.settings import AT_LEAST_1, NON_NEGATIVE, POSITIVE, check_settings

        check_settings(self, "pretraining", {
            "scenes": AT_LEAST_1, "val_scenes": AT_LEAST_1, "points_per_scene": AT_LEAST_1,
            "crop_points": AT_LEAST_1, "steps": AT_LEAST_1, "lr": POSITIVE, "noise": NON_NEGATIVE,
            "val_crops": AT_LEAST_1, "seed": NON_NEGATIVE})

    def to_dict(self) -> dict:
        return asdict(self)
