"""Rendering and evaluating a segmented run on its test views.

Label maps are the per-pixel arg-max of the rendered logits (Eq. 3), mapped
back to the input label ids. Metrics follow the paper's Sec. 4.2: mIoU and
pixel accuracy from one confusion matrix over all test views (classes present
in the GT), rendering FPS of RGB + segmentation, learnable parameters (MB),
and Calinski–Harabasz / Davies–Bouldin of the rendered finest-scale
unprojected features with the GT classes as clusters. The raw labels' own
mIoU on the same views is reported beside it when the test views have labels.
Beside the soft rendering, the hard per-Gaussian segment ids the studio and
export use are scored (`coseg.segment.compactness`): their rendered mIoU and
how compact the segments are against the ground truth.

Class-agnostic segmentations (trained on associated instance masks, whose
segment ids name no class) are scored by matching: each predicted segment is
given the GT class it overlaps most, counted in pixels over all the evaluated
views together (`coseg.metrics.OverlapTable`); the matched class maps are then
scored like any other (mIoU, accuracy). Several segments may match one class
(an over-segmented object costs nothing here); a segment straddling two
objects costs the one it loses. Where the scene has GT instance maps
(``gt_instances/<stem>.png``), the instance-level figure is reported too:
for every (view, GT instance) pair the IoU of the best-matching predicted
segment (``instance_best_iou``, and the share at IoU >= 0.5).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from coseg.segment.stage import load_segmentation


class SegmentedRun:
    """A run's kept Gaussians with their logits, ready to render."""

    def __init__(self, run_dir: Path) -> None:
        from coseg.io.ply import read_gaussians_ply
        from coseg.normalize import recorded_frame
        from coseg.render import gaussian_tensors
        from coseg.run import RunDir

        self.run_dir = Path(run_dir)
        seg = load_segmentation(self.run_dir)
        self.kept = seg["kept"]
        self.class_ids = seg["class_ids"]
        self.logits = torch.from_numpy(seg["logits"].astype(np.float32))
        self.frame = recorded_frame(RunDir.open(self.run_dir))
        g = read_gaussians_ply(self.run_dir / "gaussians.ply")
        params = gaussian_tensors(self.frame.apply_gaussians(g))
        idx = torch.from_numpy(self.kept)
        self.params = {k: v[idx].contiguous() for k, v in params.items()}
        self.sh_degree = g.sh_degree

    def _raster(self, cam, colors, sh_degree=None):
        from coseg.render import camera_tensors, rasterization

        viewmat, K = camera_tensors(self.frame.apply_camera(cam))  # cameras come in the input frame
        p = self.params
        return rasterization(p["means"], p["quats"], p["scales"], p["opacities"], colors, viewmat, K,
                             cam.width, cam.height, sh_degree=sh_degree)

    @torch.no_grad()
    def render_labels(self, cam) -> np.ndarray:
        """[H, W] label ids: arg-max of the rendered logits."""
        img, _, _ = self._raster(cam, self.logits)
        return self.class_ids[img.argmax(-1).numpy()]

    @torch.no_grad()
    def render_hard_labels(self, cam) -> np.ndarray:
        """[H, W] label ids: arg-max of the rendered one-hot hard segment ids of the Gaussians."""
        from coseg.segment.compactness import hard_id_colors

        img, _, _ = self._raster(cam, hard_id_colors(self.logits))
        return self.class_ids[img.argmax(-1).numpy()]

    @torch.no_grad()
    def render_rgb(self, cam) -> np.ndarray:
        img, _, _ = self._raster(cam, self.params["sh"], sh_degree=self.sh_degree)
        return img.numpy()

    @torch.no_grad()
    def render_features(self, cam, features: torch.Tensor) -> np.ndarray:
        img, _, _ = self._raster(cam, features)
        return img.numpy()

    def unprojected_features(self, scale: int = 1) -> torch.Tensor | None:
        """[N_kept, D] cached unprojected features of one scale, or None if not cached."""
        caches = sorted((self.run_dir / "cache").glob("unprojected-*.npz"), key=lambda p: p.stat().st_mtime)
        if not caches:
            return None
        with np.load(caches[-1]) as z:
            f = z["features"]
        if f.shape[0] <= int(self.kept.max(initial=0)):
            return None
        d = f.shape[1] // 4
        return torch.from_numpy(f[self.kept, (scale - 1) * d: scale * d].astype(np.float32))


def evaluate_segmentation(run_dir: Path, scene, split: str = "test", max_feature_pixels: int = 20000) -> dict:
    """mIoU, accuracy, FPS and feature-cluster indices of a segmented run on `split`."""
    from coseg.metrics import (ConfusionMatrix, OverlapTable, best_match_iou, calinski_harabasz, davies_bouldin,
                               miou, per_class_iou, pixel_accuracy, relabel)
    from coseg.run import RunDir

    run = SegmentedRun(run_dir)
    recorded = RunDir.open(run_dir).read_metrics().get("segmentation") or {}
    agnostic = recorded.get("label_source") == "instance_masks"
    cams = scene.split(split)
    if not cams:
        raise ValueError(f"{scene.root}: no {split} views to evaluate")
    if not any(c.gt_path is not None for c in cams):
        raise ValueError(f"{scene.root}: the {split} views have no ground-truth maps (gt/)")
    n_classes = int(max(run.class_ids.max(), max(scene.classes or {0: 0}))) + 1
    pred_cm, hard_cm, raw_cm = (ConfusionMatrix(n_classes) for _ in range(3))
    feats = run.unprojected_features(1)
    rng = np.random.default_rng(0)
    f_samples, l_samples = [], []
    render_s, has_raw = 0.0, False
    overlap, predicted, instance_ious = OverlapTable(), [], []
    for cam in cams:
        gt = scene.load_gt(cam)
        if gt is None:
            continue
        t0 = time.perf_counter()
        run.render_rgb(cam)
        pred = run.render_labels(cam)
        render_s += time.perf_counter() - t0
        hard = run.render_hard_labels(cam)
        if agnostic:
            overlap.update(pred, gt)
            predicted.append((pred, hard, gt))
            inst_path = Path(scene.root) / "gt_instances" / f"{cam.name}.png"
            if inst_path.exists():
                inst = scene.load_id_map(cam, inst_path, fill=0)
                instance_ious.extend(best_match_iou(pred, inst).values())
        else:
            pred_cm.update(pred, gt)
            hard_cm.update(hard, gt)
        raw = scene.load_labels(cam)
        if raw is not None:
            raw_cm.update(raw, gt)
            has_raw = True
        if feats is not None:
            fmap = run.render_features(cam, feats).reshape(-1, feats.shape[1])
            flat = gt.reshape(-1)
            ok = np.flatnonzero((flat >= 0) & (flat < 255))
            take = rng.choice(ok, size=min(len(ok), max_feature_pixels // len(cams) + 1), replace=False)
            f_samples.append(fmap[take])
            l_samples.append(flat[take])
    if agnostic:
        lut = overlap.majority_classes()
        for pred, hard, gt in predicted:
            pred_cm.update(relabel(pred, lut), gt)
            hard_cm.update(relabel(hard, lut), gt)
    out = {
        "split": split, "views": len(cams),
        "miou": miou(pred_cm), "accuracy": pixel_accuracy(pred_cm),
        "fps_rgb_seg": len(cams) / max(render_s, 1e-9),
        "class_iou": {str(c): round(v, 5) for c, v in per_class_iou(pred_cm).items()},
        "hard_id_miou": miou(hard_cm),
    }
    out.update(_compactness(run, scene, n_classes))
    if agnostic:
        out["matching"] = "each segment -> the GT class it overlaps most over these views"
        out["segments_matched"] = int((overlap.majority_classes() >= 0).sum())
        if instance_ious:
            out["instance_best_iou"] = float(np.mean(instance_ious))
            out["instances_at_iou_0.5"] = float(np.mean(np.asarray(instance_ious) >= 0.5))
    if has_raw:
        out["raw_label_miou"] = miou(raw_cm)
        out["raw_label_accuracy"] = pixel_accuracy(raw_cm)
        out["raw_label_class_iou"] = {str(c): round(v, 5) for c, v in per_class_iou(raw_cm).items()}
    if f_samples:
        F, L = np.concatenate(f_samples), np.concatenate(l_samples)
        if len(np.unique(L)) > 1:
            out["calinski_harabasz"] = float(calinski_harabasz(F, L))
            out["davies_bouldin"] = float(davies_bouldin(F, L))
    return out


def _compactness(run: SegmentedRun, scene, n_classes: int) -> dict:
    """Neighbour agreement of the hard segment ids, and their compactness against the training views'
    ground truth (left out without it)."""
    from coseg.segment.compactness import compactness, gaussian_gt_classes, neighbour_agreement

    segments = run.class_ids[run.logits.argmax(1).numpy()]
    out = {"neighbour_agreement": neighbour_agreement(run.params["means"].numpy(), segments)}
    gt = gaussian_gt_classes(run.params, scene.train_cameras, scene, n_classes, run.frame)
    if not (gt >= 0).any():
        return out
    c = compactness(segments, gt)
    return {**out, "compactness_object_share": c["object_share"], "compactness_segment_share": c["segment_share"]}
