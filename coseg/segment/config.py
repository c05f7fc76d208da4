"""Settings of the Segmentation Learning Stage (every one lands in config.json).

Paper values where the paper gives them (6K iterations, Adam lr 1e-3, PCA to
64-d, λpix 0.8 / λreg 0.2, regulariser on scales 3 and 4); the rest is ours
and documented in docs/method.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

from coseg.segment.losses import CoSegLossConfig
from coseg.settings import AT_LEAST_1, NON_NEGATIVE, POSITIVE, Range, SettingError, check_settings


@dataclass
class SegmentConfig:
    """Segmentation-stage settings."""

    field: str = "coseg"
    """"coseg" (feature unprojection + fusion decoder), "per-gaussian" (Gaussian Grouping baseline) or
    "label-vote" (training-free reference: the raw labels unprojected onto the Gaussians, `coseg.segment.vote`)."""
    iterations: int = 6000
    """Training iterations, one training view per iteration (paper: 6K)."""
    lr: float = 1e-3
    """Adam learning rate of the decoder (paper)."""
    lr_schedule: str = "constant"
    """"constant" (the paper's plain Adam) or "cosine": every learning rate decays over the
    iterations as a cosine from its start value to `lr_final_ratio` of it (not in the paper)."""
    lr_final_ratio: float = 0.01
    """Final / initial learning rate of the cosine schedule."""
    extractor: str = "auto"
    """2D features: "auto" (DINO if its weights are present, else efficientnet), "dino", "efficientnet", "appearance"."""
    dino_model: str = "vits8"
    """DINO architecture: "vits8", "vitb8", "dinov2_vits14" or "dinov2_vits14_reg" (the checkpoint must match)."""
    dino_weights: str | None = None
    """Path of a DINO checkpoint (default: the official file in the local torch hub cache)."""
    feature_dim: int = 64
    """PCA width of every feature scale (paper: 64)."""
    attendance_tau: float = 1e-6
    """Attendance-rate threshold τ: Gaussians blended into fewer than τ·V·H·W training pixels are pruned."""
    use_dino: bool = True
    """False: the `--no-dino` ablation (no unprojected 2D features)."""
    use_spatial: bool = True
    """False: the `--no-spatial` ablation (no RandLA-Net features)."""
    single_scale: bool = False
    """True: the `--single-scale` ablation (one fusion level)."""
    spatial_weights: str = "shipped"
    """RandLA-Net weights: "shipped" (resources/weights/randla_synth.pt), "random", or a checkpoint path."""
    decoder_widths: tuple[int, ...] = (32, 64, 128, 256)
    """Shared-MLP widths of the fusion decoder at levels 1..4 (not in the paper)."""
    loss: CoSegLossConfig = dataclasses.field(default_factory=CoSegLossConfig)
    """Pixel loss and 3D regulariser settings."""
    seed: int = 0
    """Seed of view order, sampling and initialisation."""
    log_every: int = 50
    """Iterations between progress records."""
    checkpoint_every: int = 1000
    """Iterations between decoder checkpoints."""
    infer_views: str = "train"
    """Views whose visible sets are decoded to give every Gaussian its logits: "train" or "all"."""

    def __post_init__(self) -> None:
        from coseg.errors import InputError
        from coseg.features import EXTRACTORS
        from coseg.features.dino import MODELS

        if self.extractor not in EXTRACTORS:
            raise InputError(f"unknown feature extractor {self.extractor!r} ({', '.join(EXTRACTORS)})")
        if self.dino_model not in MODELS:
            raise InputError(f"unknown DINO model {self.dino_model!r} ({', '.join(MODELS)})")
        if len(self.decoder_widths) != 4:
            raise SettingError("segmentation", "decoder_widths", self.decoder_widths,
                               "must give the widths of the 4 decoder levels")
        check_settings(self, "segmentation", {
            "iterations": AT_LEAST_1, "lr": POSITIVE, "lr_final_ratio": Range(0, 1, open_lo=True),
            "feature_dim": AT_LEAST_1, "attendance_tau": Range(0, 1, open_hi=True), "decoder_widths": AT_LEAST_1,
            "seed": NON_NEGATIVE, "log_every": AT_LEAST_1, "checkpoint_every": AT_LEAST_1,
        }, {"field": ("coseg", "per-gaussian", "label-vote"), "lr_schedule": ("constant", "cosine"),
            "infer_views": ("train", "all")})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["decoder_widths"] = list(self.decoder_widths)
        d["loss"]["reg_scales"] = list(self.loss.reg_scales)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SegmentConfig":
        d = dict(d)
        loss = d.pop("loss", {}) or {}
        if "reg_scales" in loss:
            loss["reg_scales"] = tuple(loss["reg_scales"])
        if "decoder_widths" in d:
            d["decoder_widths"] = tuple(d["decoder_widths"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known}, loss=CoSegLossConfig(**loss))
