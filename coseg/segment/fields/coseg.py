"""The CoSegGaussians field (`--field coseg`, the default): feature unprojection + fusion decoder.

Frozen unprojected 2D features f_d1..f_d4 (paper Sec. 3.2, Algorithm 1) and
frozen RandLA-Net features of each view's visible Gaussians go through the
`FusionDecoder` (Eq. 7) to one logit per class and Gaussian; the logits of a
view's visible Gaussians are rendered (Eq. 3), softmaxed per pixel and
compared with the raw labels by the CoSeg loss (Eq. 8-10). Geometry is frozen;
the decoder is the only learnable part. What is stored per Gaussian is
described in `infer`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from coseg.errors import InputError
from coseg.normalize import WORKING_UNIT_METRES
from coseg.segment.fields.base import Field, render_channels
from coseg.segment.losses import CoSegLossConfig

log = logging.getLogger(__name__)


@dataclass
class CoSegConfig:
    """Settings of the CoSeg field (paper values where the paper gives them, docs/method.md)."""

    lr: float = 1e-3
    """Adam learning rate of the decoder (paper)."""
    extractor: str = "auto"
    """2D features: "auto" (DINO if its weights are present, else efficientnet), "dino", "efficientnet", "appearance"."""
    dino_model: str = "vits8"
    """DINO architecture: "vits8", "vitb8", "dinov2_vits14" or "dinov2_vits14_reg" (the checkpoint must match)."""
    dino_weights: str | None = None
    """Path of a DINO checkpoint (default: the official file in the local torch hub cache)."""
    feature_dim: int = 64
    """PCA width of every feature scale (paper: 64)."""
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

    def __post_init__(self) -> None:
        from coseg.features import EXTRACTORS
        from coseg.features.dino import MODELS
        from coseg.settings import AT_LEAST_1, POSITIVE, SettingError, check_settings

        if isinstance(self.decoder_widths, (tuple, list)) and len(self.decoder_widths) != 4:
            raise SettingError("segmentation", "decoder_widths", self.decoder_widths,
                               "must give the widths of the 4 decoder levels")
        if self.extractor not in EXTRACTORS:
            raise InputError(f"unknown feature extractor {self.extractor!r} ({', '.join(EXTRACTORS)})")
        if self.dino_model not in MODELS:
            raise InputError(f"unknown DINO model {self.dino_model!r} ({', '.join(MODELS)})")
        check_settings(self, "segmentation", {"lr": POSITIVE, "feature_dim": AT_LEAST_1,
                                              "decoder_widths": AT_LEAST_1})
        if not (self.use_dino or self.use_spatial):
            raise InputError("the CoSeg field needs 2D features, spatial features or both "
                             "(--no-dino and --no-spatial together leave it no input)")


class CoSegField(Field):
    """Fusion decoder over frozen per-Gaussian inputs; one view's visible Gaussians per step."""

    config_class = CoSegConfig

    def prepare(self) -> Iterator[dict]:
        """Labels, features + unprojection, pruning, spatial encoding, the decoder."""
        from coseg.features import select_extractor
        from coseg.render import gaussian_tensors
        from coseg.segment.prepare import (collect_labels, encode_views, feature_cache_key, kept_tensors,
                                           label_index_maps, prune_by_attendance, unproject_scales)

        c, run, scene = self.config, self.inputs.run, self.inputs.scene
        self.cams = self.inputs.cameras
        self.labels = collect_labels(scene, self.cams)
        self.class_ids = self.labels.class_ids
        self.label_maps = label_index_maps(scene, self.cams, self.labels)
        self.class_weights = self._class_weights()
        params = gaussian_tensors(self.inputs.gaussians)
        extractor = select_extractor(c.extractor, dino_model=c.dino_model, dino_weights=c.dino_weights)
        self.info["feature_extractor"] = getattr(extractor, "name", type(extractor).__name__)
        self.info["feature_extractor_description"] = getattr(extractor, "description", "")
        key = feature_cache_key(run.gaussians_path, self.cams, extractor, c.feature_dim, self.inputs.seed)
        result = None
        for rec in unproject_scales(scene, self.cams, params, extractor, c.feature_dim, self.inputs.seed,
                                    run.path / "cache", key):
            result = rec.pop("result", None)
            self.info.update({k: v for k, v in rec.items() if k.endswith("_s") or k.endswith("_image")})
            yield rec
        features, counts, widths = result
        self.kept = prune_by_attendance(counts, self.inputs.attendance_tau, self.cams)
        self.info.update(gaussians=len(self.inputs.gaussians), kept=int(len(self.kept)),
                         pruned=int(len(self.inputs.gaussians) - len(self.kept)))
        self.params = kept_tensors(params, self.kept)
        self.xyz = self.params["means"].numpy()
        ends = np.cumsum((0,) + tuple(widths))
        self.f_d = [torch.from_numpy(np.ascontiguousarray(features[self.kept, a:b])) for a, b in zip(ends, ends[1:])]
        self.encoder = self._encoder() if c.use_spatial else None
        self.views = []
        # The stage works in the run's working frame (coseg.normalize); the encoder expects metres.
        for rec in encode_views(self.cams, self.params, self.encoder, c.use_spatial, self.inputs.seed,
                                self.labels.labelled, scale=WORKING_UNIT_METRES):
            vi = rec.pop("view_inputs", None)
            if vi is not None:
                self.views.append(vi)
            yield rec
        if not self.views:
            raise InputError(f"{run.path}: no labelled training view sees any Gaussian")
        self._build_decoder(tuple(widths))

    def _class_weights(self) -> torch.Tensor | None:
        """Pixel-loss class weights from the training labels' class frequencies (None when off)."""
        from coseg.segment.losses import class_weights

        beta = self.config.loss.class_balance
        if beta == 0:
            return None
        n = len(self.class_ids)
        counts = np.zeros(n, np.int64)
        for m in self.label_maps.values():
            ids = m.reshape(-1).numpy()
            counts += np.bincount(ids[ids >= 0], minlength=n)[:n]
        w = class_weights(counts, beta)
        self.info["class_weights"] = {int(c): round(float(v), 4) for c, v in zip(self.class_ids, w)}
        log.info("pixel-loss class weights (beta=%g): %s", beta,
                 ", ".join(f"{c}:{v:.2f}" for c, v in zip(self.class_ids, w.tolist())))
        return w

    def _encoder(self):
        from coseg import resources_dir
        from coseg.segment.randla import RandLAEncoder
        from coseg.segment.randla_weights import load_encoder

        w = self.config.spatial_weights
        path = resources_dir() / "weights" / "randla_synth.pt" if w == "shipped" else (None if w == "random" else Path(w))
        if path is not None and path.exists():
            enc = load_encoder(path)
            self.info["spatial_weights"] = str(path)
        else:
            if path is not None and w != "shipped":
                raise InputError(f"{path}: RandLA-Net checkpoint not found")
            enc = RandLAEncoder()
            self.info["spatial_weights"] = "random initialisation (no pretrained weights found)"
            log.warning("RandLA-Net encoder: no pretrained weights (%s); using a fixed random "
                        "initialisation", path)
        return enc.freeze()

    def _build_decoder(self, feature_dims: tuple[int, ...]) -> None:
        from coseg.segment.decoder import DecoderConfig, FusionDecoder, learnable_params_mb

        c = self.config
        spatial, bottleneck = (32, 128, 256, 512), 512
        if self.encoder is not None:
            spatial = tuple(self.encoder.config.level_channels)
            bottleneck = self.encoder.config.bottleneck_channels
        torch.manual_seed(self.inputs.seed)
        self.decoder = FusionDecoder(DecoderConfig(
            num_classes=len(self.class_ids), feature_dims=feature_dims, spatial_dims=spatial,
            bottleneck_dim=bottleneck, widths=tuple(c.decoder_widths), use_dino=c.use_dino,
            use_spatial=c.use_spatial, single_scale=c.single_scale))
        self.info["learnable_params_mb"] = round(learnable_params_mb(self.decoder), 4)
        self.info["classes"] = [int(v) for v in self.class_ids]
        self.info["labelled_views"] = len(self.labels.labelled)
        self.info["views_without_labels"] = self.labels.missing

    def param_groups(self) -> list[dict]:
        return [{"params": list(self.decoder.parameters()), "lr": self.config.lr}]

    @property
    def num_views(self) -> int:
        return len(self.views)

    def view_logits(self, vi) -> tuple[torch.Tensor, dict]:
        """Decoder logits [P, C] of one view's visible Gaussians and the fused features per level."""
        from coseg.segment.decoder import gather_fusion_inputs

        feats = [f[torch.from_numpy(vi.visible)] for f in self.f_d] if self.config.use_dino else None
        encoded = None
        if vi.f_s is not None:
            encoded = {"f_s": [t.float() for t in vi.f_s], "f_e": vi.f_e.float()}
        out = self.decoder(gather_fusion_inputs(vi.hierarchy, encoded, feats))
        return out["logits"], out["fused"]

    def train_step(self, view: int) -> tuple[torch.Tensor, dict[str, float]]:
        from coseg.segment.losses import coseg_loss

        vi = self.views[view]
        labels = self.label_maps[vi.cam_index].reshape(-1)
        logits, fused = self.view_logits(vi)
        rendered = render_channels(self.params, self.cams[vi.cam_index], vi.visible, logits)
        probs = torch.softmax(rendered, dim=-1).reshape(-1, logits.shape[1])
        return coseg_loss(probs, labels, fused, vi.hierarchy.xyz, self.config.loss, self.rng,
                          ignore_index=-1, weights=self.class_weights)

    @torch.no_grad()
    def infer(self) -> np.ndarray:
        """Mean decoder logits over every view whose visible set holds a Gaussian.

        Views are all training views (those without labels too); kept Gaussians in no
        view's visible set take the logits of their nearest decoded neighbour.
        """
        from coseg.segment.infer import fill_from_nearest
        from coseg.segment.prepare import encode_views

        n, c = len(self.kept), len(self.class_ids)
        total = np.zeros((n, c), np.float64)
        count = np.zeros(n, np.int64)
        views = list(self.views)
        others = [i for i in range(len(self.cams)) if i not in set(self.labels.labelled)]
        if others:
            for rec in encode_views(self.cams, self.params, self.encoder, self.encoder is not None,
                                    self.inputs.seed, others, scale=WORKING_UNIT_METRES):
                if rec.get("view_inputs") is not None:
                    views.append(rec["view_inputs"])
        for vi in views:
            logits, _ = self.view_logits(vi)
            np.add.at(total, vi.visible, logits.numpy())
            np.add.at(count, vi.visible, 1)
        seen = count > 0
        out = np.zeros((n, c), np.float32)
        out[seen] = (total[seen] / count[seen, None]).astype(np.float32)
        filled = fill_from_nearest(out, self.xyz, seen)
        if filled:
            log.info("%d kept Gaussians outside every decoded view's visible set took their "
                     "nearest neighbour's logits", filled)
        return out

    def state_dict(self) -> dict:
        return {**super().state_dict(), "decoder": self.decoder.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.decoder.load_state_dict(state["decoder"])
