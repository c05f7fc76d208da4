"""The CoSegGaussians field (`--field coseg`, the default): feature unprojection + fusion decoder.

Frozen unprojected 2D features f_d1..f_d4 (paper Sec. 3.2, Algorithm 1) and
frozen RandLA-Net features go through the `FusionDecoder` (Eq. 7) to one logit
per class and Gaussian; the logits of a view's Gaussians are rendered (Eq. 3),
softmaxed per pixel and compared with the raw labels by the CoSeg loss
(Eq. 8-10). Geometry is frozen; the decoder is the only learnable part.

Every input of the decoder is a property of the Gaussian, not of the view:
the RandLA-Net encoder runs once on all kept Gaussians (one hierarchy, its
set statistics those of the scene, positions in metres), so a Gaussian's
spatial feature is the same whichever view it is rendered in. A training
step decodes the Gaussians blended into the view's labelled pixels (and the
coarser points their upsampling reads, a `DecodePlan`; the values are those
of decoding every Gaussian) and renders them through the view's frozen
blending weights (`coseg.render.blend_weights`, a fixed sparse map without each
pixel's lightest pairs up to `CoSegConfig.blend_tolerance` of its weight). What is
stored per Gaussian (`infer`) is one decoding of every kept Gaussian: the
function training optimised, evaluated once.
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
from coseg.segment.decoder import DecodePlan
from coseg.segment.fields.base import Field
from coseg.segment.losses import CoSegLossConfig, neighbour_table
from coseg.segment.sparse import SparseRows, render_softmax

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
    feature_norm: str = "l2"
    """Normalisation after the PCA: "l2" per feature vector (the paper) or "rms", one constant per
    scale (`coseg.features.pca`, docs/method.md)."""
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
    spatial_dim: int = 0
    """PCA width of the frozen spatial features f_s1..f_s4 and f_e per level (0 = the encoder's widths)."""
    blend_tolerance: float = 0.01
    """Share of each pixel's blending weight left out of the frozen rendering matrices, lightest pairs
    first (not in the paper: memory and time; 0 keeps every pair, docs/method.md)."""
    loss: CoSegLossConfig = dataclasses.field(default_factory=CoSegLossConfig)
    """Pixel loss and 3D regulariser settings."""

    def __post_init__(self) -> None:
        from coseg.features import EXTRACTORS
        from coseg.features.dino import MODELS
        from coseg.features.pca import NORMS
        from coseg.settings import AT_LEAST_1, POSITIVE, Range, SettingError, check_settings

        if isinstance(self.decoder_widths, (tuple, list)) and len(self.decoder_widths) != 4:
            raise SettingError("segmentation", "decoder_widths", self.decoder_widths,
                               "must give the widths of the 4 decoder levels")
        if self.extractor not in EXTRACTORS:
            raise InputError(f"unknown feature extractor {self.extractor!r} ({', '.join(EXTRACTORS)})")
        if self.dino_model not in MODELS:
            raise InputError(f"unknown DINO model {self.dino_model!r} ({', '.join(MODELS)})")
        check_settings(self, "segmentation", {"lr": POSITIVE, "feature_dim": AT_LEAST_1,
                                              "decoder_widths": AT_LEAST_1,
                                              "blend_tolerance": Range(0, 0.5)},
                       {"feature_norm": NORMS})
        if not (self.use_dino or self.use_spatial):
            raise InputError("the CoSeg field needs 2D features, spatial features or both "
                             "(--no-dino and --no-spatial together leave it no input)")


@dataclass
class ViewBatch:
    """What one training step on a view needs (built once in `prepare`)."""

    cam_index: int
    """Index of the view in the training cameras."""
    plan: DecodePlan
    """The points to decode: level 1 = the Gaussians blended into the view's labelled pixels."""
    render: SparseRows
    """[R, P_1] blending weights of the view's R labelled pixels over the plan's level-1 points."""
    labels: torch.Tensor
    """[R] int64 output index of each of those pixels' raw label."""
    neighbours: dict[int, np.ndarray]
    """Regularised level -> [P_n, K] nearest neighbours of each of the plan's level-n points among them."""


class CoSegField(Field):
    """Fusion decoder over frozen per-Gaussian inputs; one view's Gaussians per step."""

    config_class = CoSegConfig

    def prepare(self) -> Iterator[dict]:
        """Labels, features + unprojection, pruning, spatial encoding, per-view batches, the decoder."""
        from coseg.features import select_extractor
        from coseg.render import gaussian_tensors
        from coseg.segment.prepare import (collect_labels, feature_cache_key, kept_tensors, label_index_maps,
                                           prune_by_attendance, unproject_scales)

        c, run, scene = self.config, self.inputs.run, self.inputs.scene
        self.cams = self.inputs.cameras
        self.labels = collect_labels(scene, self.cams, self.inputs.labels)
        self.class_ids = self.labels.class_ids
        label_maps = label_index_maps(scene, self.cams, self.labels, self.inputs.labels)
        self.class_weights = self._class_weights(label_maps)
        params = gaussian_tensors(self.inputs.gaussians)
        extractor = select_extractor(c.extractor, dino_model=c.dino_model, dino_weights=c.dino_weights)
        self.info["feature_extractor"] = getattr(extractor, "name", type(extractor).__name__)
        self.info["feature_extractor_description"] = getattr(extractor, "description", "")
        key = feature_cache_key(run.gaussians_path, self.cams, extractor, c.feature_dim, self.inputs.seed,
                                c.feature_norm)
        result = None
        for rec in unproject_scales(scene, self.cams, params, extractor, c.feature_dim, self.inputs.seed,
                                    run.path / "cache", key, norm=c.feature_norm):
            result = rec.pop("result", None)
            self.info.update({k: v for k, v in rec.items() if k.endswith("_s") or k.endswith("_image")})
            yield rec
        features, counts, widths = result
        self.kept = prune_by_attendance(counts, self.inputs.attendance_tau, self.cams)
        self.info.update(gaussians=len(self.inputs.gaussians), kept=int(len(self.kept)),
                         pruned=int(len(self.inputs.gaussians) - len(self.kept)))
        self.params = kept_tensors(params, self.kept)
        ends = np.cumsum((0,) + tuple(widths))
        f_d = [torch.from_numpy(np.ascontiguousarray(features[self.kept, a:b])) for a, b in zip(ends, ends[1:])]
        yield {"stage": "spatial", "points": int(len(self.kept))}
        self.hierarchy, self.fusion = self._encode(f_d)
        self.batches = []
        for j, i in enumerate(self.labels.labelled):
            batch = self._view_batch(i, label_maps[i])
            if batch is not None:
                self.batches.append(batch)
            yield {"stage": "views", "view": j + 1, "views": len(self.labels.labelled)}
        if not self.batches:
            raise InputError(f"{run.path}: no labelled training view sees any Gaussian")
        self.info["render_matrices_mb"] = round(sum(b.render.nbytes for b in self.batches) / 2**20, 1)
        self._build_decoder(tuple(widths))

    def _class_weights(self, label_maps: dict) -> torch.Tensor | None:
        """Pixel-loss class weights from the training labels' class frequencies (None when off)."""
        from coseg.segment.losses import class_weights

        beta = self.config.loss.class_balance
        if beta == 0:
            return None
        n = len(self.class_ids)
        counts = np.zeros(n, np.int64)
        for m in label_maps.values():
            ids = m.reshape(-1).numpy()
            counts += np.bincount(ids[ids >= 0], minlength=n)[:n]
        w = class_weights(counts, beta)
        self.info["class_weights"] = {int(c): round(float(v), 4) for c, v in zip(self.class_ids, w)}
        pairs = [f"{c}:{v:.2f}" for c, v in zip(self.class_ids, w.tolist())]
        shown = ", ".join(pairs) if len(pairs) <= 20 else (
            f"{len(pairs)} classes, {float(w.min()):.2f}-{float(w.max()):.2f} "
            "(all in metrics.json, segmentation.class_weights)")
        log.info("pixel-loss class weights (beta=%g): %s", beta, shown)
        return w

    def _encode(self, f_d: list[torch.Tensor]):
        """The scene's hierarchy and the decoder's frozen inputs of every kept Gaussian."""
        from coseg.segment.decoder import gather_fusion_inputs
        from coseg.segment.randla import build_hierarchy

        c = self.config
        xyz = self.params["means"].numpy()
        rng = np.random.default_rng([self.inputs.seed, 2])
        encoded = None
        if c.use_spatial:
            encoder = self._encoder()
            # The stage works in the run's working frame (coseg.normalize); the encoder expects metres.
            encoded = encoder.encode(xyz, rng=rng, scale=WORKING_UNIT_METRES)
            hierarchy = encoded["hierarchy"]
            self.spatial_dims = [f.shape[1] for f in encoded["f_s"]] + [encoded["f_e"].shape[1]]
            if c.spatial_dim:
                encoded = {"f_s": [_reduce(f, c.spatial_dim) for f in encoded["f_s"]],
                           "f_e": _reduce(encoded["f_e"], c.spatial_dim)}
                self.spatial_dims = [f.shape[1] for f in encoded["f_s"]] + [encoded["f_e"].shape[1]]
        else:
            hierarchy = build_hierarchy(xyz, rng=rng)
        return hierarchy, gather_fusion_inputs(hierarchy, encoded, f_d if c.use_dino else None)

    def _view_batch(self, cam_index: int, labels: torch.Tensor) -> ViewBatch | None:
        """The view's labelled pixels, their blending weights and the decode plan of their Gaussians."""
        from coseg.render import camera_tensors
        from coseg.render.weights import blend_weights

        cam = self.cams[cam_index]
        viewmat, K = camera_tensors(cam)
        p = self.params
        full = SparseRows(*blend_weights(p["means"], p["quats"], p["scales"], p["opacities"], viewmat, K,
                                         cam.width, cam.height), n_cols=len(self.kept))
        flat = labels.reshape(-1)
        rows = torch.nonzero(flat >= 0).reshape(-1).numpy()
        render = full.rows(rows).without_light_entries(self.config.blend_tolerance)
        if render.nnz == 0:
            return None
        points, render = render.compacted()
        plan = DecodePlan.for_points(self.fusion, points)
        loss = self.config.loss
        levels = set() if self.config.single_scale else set(loss.reg_scales)
        if loss.lambda_logits > 0:
            levels.add(1)  # the output logits are those of the level-1 points
        neighbours = {n: neighbour_table(self.hierarchy.xyz[n - 1][plan.sets[n - 1]], loss.reg_k).astype(np.int32)
                      for n in sorted(levels)}
        return ViewBatch(cam_index, plan, render, flat[rows].contiguous(), neighbours)

    def _encoder(self):
        from coseg.segment.pretrain_config import SHIPPED_WEIGHTS
        from coseg.segment.randla import RandLAEncoder
        from coseg.segment.randla_weights import load_encoder

        w = self.config.spatial_weights
        path = SHIPPED_WEIGHTS if w == "shipped" else (None if w == "random" else Path(w))
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
        if c.use_spatial:
            spatial, bottleneck = tuple(self.spatial_dims[:4]), self.spatial_dims[4]
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
        return len(self.batches)

    def train_step(self, view: int) -> tuple[torch.Tensor, dict[str, float]]:
        from coseg.segment.losses import coseg_loss

        b = self.batches[view]
        out = self.decoder(self.fusion.take(b.plan))
        probs = render_softmax(b.render, out["logits"])
        level_xyz = [x[s] for x, s in zip(self.hierarchy.xyz, b.plan.sets)]
        return coseg_loss(probs, b.labels, out["fused"], level_xyz, self.config.loss, self.rng,
                          ignore_index=-1, weights=self.class_weights, neighbours=b.neighbours,
                          logits=out["logits"])

    @torch.no_grad()
    def infer(self) -> np.ndarray:
        """One decoding of every kept Gaussian (what every training step decodes a part of)."""
        return self.decoder(self.fusion)["logits"].numpy().astype(np.float32)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "decoder": self.decoder.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.decoder.load_state_dict(state["decoder"])


def _reduce(features: torch.Tensor, dim: int) -> torch.Tensor:
    """[P, D] frozen features -> their first `dim` principal coordinates (unchanged when D <= dim)."""
    from coseg.features.pca import fit_pca

    if features.shape[1] <= dim or features.shape[0] < 2:
        return features
    x = features.float().numpy()
    return torch.from_numpy(fit_pca(x, dim).project(x))
