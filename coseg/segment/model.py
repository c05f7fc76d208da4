"""The trainable segmentation field of one run and its training step.

Two fields share this class:
- "coseg": frozen unprojected features f_d1..f_d4 and frozen RandLA-Net
  features of each view's visible Gaussians -> `FusionDecoder` -> logits per
  Gaussian, rendered (Eq. 3), softmaxed per pixel, CoSeg loss (Eq. 8-10).
- "per-gaussian": Gaussian Grouping's baseline, a learnable 16-d identity per
  Gaussian rendered and classified per pixel by a linear layer, CE + its 3D
  KNN regulariser (on the view's visible Gaussians).
Geometry is frozen in both; only the field learns.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import torch

from coseg.errors import InputError
from coseg.segment.config import SegmentConfig
from coseg.segment.prepare import collect_labels, encode_views, feature_cache_key, unproject_scales

log = logging.getLogger(__name__)


class SegmentationModel:
    """Prepared inputs, the field, its optimiser and the training step."""

    def __init__(self, run, scene, gaussians, config: SegmentConfig) -> None:
        self.run, self.scene, self.gaussians, self.config = run, scene, gaussians, config
        self.cams = scene.train_cameras
        self.rng = np.random.default_rng(config.seed)
        torch.manual_seed(config.seed)
        self.order: list[int] = []
        self.info: dict = {}

    # ------------------------------------------------------------ preparation
    def prepare(self):
        """Generator: labels, features + unprojection, pruning, spatial encoding, model."""
        from coseg.features import select_extractor
        from coseg.render import attendance_mask, gaussian_tensors

        c = self.config
        self.labels = collect_labels(self.scene, self.cams)
        self.label_maps = {i: torch.from_numpy(self.labels.to_index(self.scene.load_labels(self.cams[i])))
                           for i in self.labels.labelled}
        self.class_weights = self._class_weights()
        params = gaussian_tensors(self.gaussians)
        extractor = select_extractor(c.extractor, dino_model=c.dino_model, dino_weights=c.dino_weights)
        self.info["feature_extractor"] = getattr(extractor, "name", type(extractor).__name__)
        self.info["feature_extractor_description"] = getattr(extractor, "description", "")
        key = feature_cache_key(self.run.gaussians_path, self.cams, extractor, c)
        result = None
        for rec in unproject_scales(self.scene, self.cams, params, extractor, c,
                                    self.run.path / "cache", key):
            result = rec.pop("result", None)
            self.info.update({k: v for k, v in rec.items() if k.endswith("_s") or k.endswith("_image")})
            yield rec
        features, counts, widths = result
        cam0 = self.cams[0]
        self.kept = np.flatnonzero(attendance_mask(counts, c.attendance_tau, len(self.cams),
                                                   cam0.width, cam0.height))
        if len(self.kept) == 0:
            raise InputError(f"attendance-rate pruning (tau={c.attendance_tau:g}) removed every Gaussian; "
                             "lower --attendance-tau")
        self.info.update(gaussians=len(self.gaussians), kept=int(len(self.kept)),
                         pruned=int(len(self.gaussians) - len(self.kept)))
        log.info("attendance pruning (tau=%g) kept %d of %d Gaussians", c.attendance_tau,
                 len(self.kept), len(self.gaussians))
        kept_t = torch.from_numpy(self.kept)
        self.params = {k: v[kept_t].contiguous() for k, v in params.items()}
        self.xyz = self.params["means"].numpy()
        ends = np.cumsum((0,) + widths)
        self.f_d = [torch.from_numpy(np.ascontiguousarray(features[self.kept, a:b])) for a, b in zip(ends, ends[1:])]
        self.feature_dims = widths
        self.encoder = self._encoder() if (c.field == "coseg" and c.use_spatial) else None
        self.views = []
        from coseg.normalize import WORKING_UNIT_METRES

        # The stage works in the run's working frame (coseg.normalize); the encoder expects metres.
        for rec in encode_views(self.cams, self.params, self.encoder, self.encoder is not None,
                                c.seed, self.labels.labelled, scale=WORKING_UNIT_METRES):
            vi = rec.pop("view_inputs", None)
            if vi is not None:
                self.views.append(vi)
            yield rec
        if not self.views:
            raise InputError(f"{self.run.path}: no labelled training view sees any Gaussian")
        self._build_field()

    def _class_weights(self) -> torch.Tensor | None:
        """CoSeg pixel-loss class weights from the training labels' class frequencies.

        None when off, and for the per-Gaussian baseline (Gaussian Grouping's unweighted CE).
        """
        from coseg.segment.losses import class_weights

        beta = self.config.loss.class_balance
        if beta == 0 or self.config.field != "coseg":
            return None
        n = len(self.labels.class_ids)
        counts = np.zeros(n, np.int64)
        for m in self.label_maps.values():
            ids = m.reshape(-1).numpy()
            counts += np.bincount(ids[ids >= 0], minlength=n)[:n]
        w = class_weights(counts, beta)
        self.info["class_weights"] = {int(c): round(float(v), 4) for c, v in zip(self.labels.class_ids, w)}
        log.info("pixel-loss class weights (beta=%g): %s", beta,
                 ", ".join(f"{c}:{v:.2f}" for c, v in zip(self.labels.class_ids, w.tolist())))
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
                raise FileNotFoundError(f"{path}: RandLA-Net checkpoint not found")
            enc = RandLAEncoder()
            self.info["spatial_weights"] = "random initialisation (no pretrained weights found)"
            log.warning("RandLA-Net encoder: no pretrained weights (%s); using a fixed random "
                        "initialisation", path)
        return enc.freeze()

    def _build_field(self) -> None:
        from coseg.segment.decoder import DecoderConfig, FusionDecoder, learnable_params_mb
        from coseg.segment.field import IdentityField

        c, n_classes = self.config, len(self.labels.class_ids)
        if c.field == "coseg":
            spatial = (32, 128, 256, 512)
            bottleneck = 512
            if self.encoder is not None:
                spatial = tuple(self.encoder.config.level_channels)
                bottleneck = self.encoder.config.bottleneck_channels
            self.field = FusionDecoder(DecoderConfig(
                num_classes=n_classes, feature_dims=self.feature_dims, spatial_dims=spatial,
                bottleneck_dim=bottleneck, widths=tuple(c.decoder_widths), use_dino=c.use_dino,
                use_spatial=c.use_spatial, single_scale=c.single_scale))
            self.optim = torch.optim.Adam(self.field.parameters(), lr=c.lr)
        elif c.field == "per-gaussian":
            self.field = IdentityField(len(self.kept), n_classes, seed=c.seed)
            self.optim = torch.optim.Adam(self.field.param_groups())
        else:
            raise ValueError(f"unknown segmentation field {c.field!r} (coseg or per-gaussian)")
        self.base_lrs = [g["lr"] for g in self.optim.param_groups]
        self.info["learnable_params_mb"] = round(learnable_params_mb(self.field), 4)
        self.info["classes"] = [int(v) for v in self.labels.class_ids]
        self.info["labelled_views"] = len(self.labels.labelled)
        self.info["views_without_labels"] = self.labels.missing

    # ------------------------------------------------------------ training
    def _next_view(self):
        if not self.order:
            self.order = list(self.rng.permutation(len(self.views)))
        return self.views[self.order.pop()]

    def view_logits(self, vi) -> tuple[torch.Tensor, dict]:
        """Decoder logits [P, C] of one view's visible Gaussians (and fused features)."""
        from coseg.segment.decoder import gather_fusion_inputs

        feats = [f[torch.from_numpy(vi.visible)] for f in self.f_d] if self.config.use_dino else None
        encoded = None
        if vi.f_s is not None:
            encoded = {"f_s": [t.float() for t in vi.f_s], "f_e": vi.f_e.float()}
        out = self.field(gather_fusion_inputs(vi.hierarchy, encoded, feats))
        return out["logits"], out["fused"]

    def render(self, vi, colors: torch.Tensor) -> torch.Tensor:
        """Render per-Gaussian channels of a view's visible Gaussians -> [H, W, C]."""
        from coseg.render import camera_tensors, rasterization

        cam = self.cams[vi.cam_index]
        viewmat, K = camera_tensors(cam)
        idx = torch.from_numpy(vi.visible)
        p = self.params
        img, _, _ = rasterization(p["means"][idx], p["quats"][idx], p["scales"][idx],
                                  p["opacities"][idx], colors, viewmat, K, cam.width, cam.height)
        return img

    def lr_factor(self, it: int) -> float:
        """Learning-rate multiplier at iteration `it` (1-based) of the configured schedule."""
        c = self.config
        if c.lr_schedule == "constant":
            return 1.0
        t = min(1.0, (it - 1) / max(1, c.iterations - 1))
        return c.lr_final_ratio + (1.0 - c.lr_final_ratio) * 0.5 * (1.0 + float(np.cos(np.pi * t)))

    def train_step(self, it: int) -> dict:
        from coseg.segment.losses import ce_loss, coseg_loss, kl_regulariser

        factor = self.lr_factor(it)
        for group, base in zip(self.optim.param_groups, self.base_lrs):
            group["lr"] = base * factor
        vi = self._next_view()
        labels = self.label_maps[vi.cam_index].reshape(-1)
        self.optim.zero_grad(set_to_none=True)
        if self.config.field == "coseg":
            logits, fused = self.view_logits(vi)
            probs = torch.softmax(self.render(vi, logits), dim=-1).reshape(-1, logits.shape[1])
            loss, parts = coseg_loss(probs, labels, fused, vi.hierarchy.xyz, self.config.loss,
                                     self.rng, ignore_index=-1, weights=self.class_weights)
        else:
            idx = torch.from_numpy(vi.visible)
            rendered = self.render(vi, self.field.identities[idx])
            probs = torch.softmax(self.field.classify(rendered), dim=-1).reshape(-1, len(self.labels.class_ids))
            pix = ce_loss(probs, labels, ignore_index=-1)
            own = self.field.classify(self.field.identities[idx])
            reg = self.field.config.reg_weight * kl_regulariser(
                own, self.xyz[vi.visible], self.field.config.reg_samples, self.field.config.reg_k,
                self.rng, include_self=True)
            loss, parts = pix + reg, {"pix": float(pix.detach()), "reg": float(reg.detach())}
        loss.backward()
        self.optim.step()
        return {"loss": float(loss.detach()), **parts}

    # ------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.run.checkpoints_dir / "segment.pt"

    def save_checkpoint(self, it: int) -> None:
        from coseg.io.atomic import write_bytes_atomic

        buf = io.BytesIO()
        torch.save({"iteration": it, "field": self.field.state_dict(), "optim": self.optim.state_dict(),
                    "rng": self.rng.bit_generator.state, "order": list(map(int, self.order)),
                    "torch_rng": torch.get_rng_state(), "config": self.config.to_dict()}, buf)
        write_bytes_atomic(self.checkpoint_path, buf.getvalue())

    def load_checkpoint(self) -> int:
        if not self.checkpoint_path.exists():
            raise InputError(f"{self.run.path}: no segmentation checkpoint to resume from")
        ck = torch.load(self.checkpoint_path, weights_only=False)
        self.field.load_state_dict(ck["field"])
        self.optim.load_state_dict(ck["optim"])
        self.rng.bit_generator.state = ck["rng"]
        self.order = list(ck["order"])
        torch.set_rng_state(ck["torch_rng"])
        return int(ck["iteration"])

    # ------------------------------------------------------------ outputs
    def write_outputs(self, out_dir: Path) -> dict:
        """Write segmentation.npz and segmented.ply into `out_dir`; returns the stage summary."""
        from coseg.segment.infer import write_segmentation

        return write_segmentation(self, out_dir)
