"""Paper Tables 1 and 3 on any built run: segmentation variants side by side.

Usage:
    python benchmarks/segmentation_ablation.py RUN [--iterations N] [--rows full,no-dino,...]
        [--lr-schedule cosine] [--seed N] [--extractor efficientnet] [--json OUT]

Each row trains the segmentation stage from scratch in its own run folder
RUN/ablations/<row>/ (sharing RUN's gaussians.ply and its unprojected-feature
cache), evaluates it on the test views and prints one table row: mIoU of the
soft rendering and of the hard per-Gaussian ids, compactness (object and
segment shares, `coseg.segment.compactness`), the neighbour agreement of the hard
ids (nbr), pixel accuracy, learnable
parameters (MB), rendering FPS of RGB + segmentation and wall time. The raw labels' own mIoU on the same views is printed first.

Rows (paper Table 3 plus the Table 1 per-Gaussian baseline):
    gt-vote        ORACLE, not a method: the test scene's ground truth of the TRAINING views
                   voted onto the Gaussians; the ceiling the built geometry allows any
                   field whose labels are right (needs gt/ maps of the training views)
    label-vote     training-free reference: the raw labels unprojected onto the Gaussians
    per-gaussian   Gaussian Grouping style identities, CE + 3D regulariser
    no-dino        spatial features only, CoSeg loss
    no-spatial     unprojected 2D features only, CoSeg loss
    single-scale   one fusion level, CoSeg loss
    ce             full model with cross-entropy instead of the CoSeg loss
    unweighted     full model, CoSeg loss without class balancing (the paper's plain mean)
    no-reg         full model without the 3D regulariser (lambda_reg 0)
    reg-logits     full model plus the regulariser on the output logits (lambda_logits 0.2)
    l2-features    full model, 2D features L2-normalised per vector after the PCA (the paper)
    rms-features   full model, 2D features divided by one RMS length per scale after the PCA
    full           full model, CoSeg loss (class-balanced, the default)

`--lr-schedule cosine` trains every row with the cosine learning-rate decay
(in RUN/ablations/<row>-cosine/); `--extractor NAME` gives every row those 2D
features (in RUN/ablations/<row>-NAME/; default "auto", the stage's own
choice). Each row also records its per-class IoU and peak RSS (of the whole
process: run one row per process to measure a row's own).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

#: row -> (field, its settings that differ from the defaults; "loss" nests the CoSeg loss's).
ROWS = {
    "gt-vote": ("gt-vote", {}),
    "label-vote": ("label-vote", {}),
    "per-gaussian": ("per-gaussian", {}),
    "no-dino": ("coseg", {"use_dino": False}),
    "no-spatial": ("coseg", {"use_spatial": False}),
    "single-scale": ("coseg", {"single_scale": True}),
    "ce": ("coseg", {"loss": {"pixel_loss": "ce"}}),
    "unweighted": ("coseg", {"loss": {"class_balance": 0.0}}),
    "no-reg": ("coseg", {"loss": {"lambda_reg": 0.0}}),
    "reg-logits": ("coseg", {"loss": {"lambda_logits": 0.2}}),
    "l2-features": ("coseg", {"feature_norm": "l2"}),
    "rms-features": ("coseg", {"feature_norm": "rms"}),
    "full": ("coseg", {}),
}


def make_row_run(run: Path, name: str) -> Path:
    """A run folder for one row: RUN's config and Gaussians, a shared feature cache."""
    row = run / "ablations" / name
    row.mkdir(parents=True, exist_ok=True)
    shutil.copy2(run / "config.json", row / "config.json")
    if not (row / "gaussians.ply").exists():
        os.link(run / "gaussians.ply", row / "gaussians.ply")
    (run / "cache").mkdir(exist_ok=True)
    if not (row / "cache").exists():
        (row / "cache").symlink_to((run / "cache").resolve())
    for stale in ("segmentation.npz", "segmented.ply", "metrics.json"):
        (row / stale).unlink(missing_ok=True)
    return row


class _GroundTruthAsLabels:
    """A scene whose label maps are its ground-truth maps (for the oracle row only)."""

    def __init__(self, scene) -> None:
        self._scene = scene

    def load_labels(self, cam):
        return self._scene.load_gt(cam)

    def __getattr__(self, name):
        return getattr(self._scene, name)


def oracle_row(run: Path, name: str) -> dict:
    """The gt-vote row: ground truth of the training views voted onto the Gaussians, evaluated on test."""
    from coseg.cli.eval import load_run_scene
    from coseg.io.ply import read_gaussians_ply
    from coseg.run import RunDir
    from coseg.segment.evaluate import evaluate_segmentation
    from coseg.segment.config import SegmentConfig
    from coseg.segment.fields.label_vote import vote_labels
    from coseg.segment.infer import write_segment_outputs

    row = make_row_run(run, name)
    rundir = RunDir.open(row)
    scene = load_run_scene(rundir, None)
    if not all(c.gt_path is not None for c in scene.train_cameras):
        raise SystemExit(f"{scene.root}: gt-vote needs ground-truth maps of every training view")
    t0 = time.perf_counter()
    gaussians = read_gaussians_ply(rundir.gaussians_path)
    result = vote_labels(_GroundTruthAsLabels(scene), scene.train_cameras, gaussians, SegmentConfig.attendance_tau)
    write_segment_outputs(rundir, scene, gaussians, result["kept"], result["labels"].class_ids, result["votes"],
                          {}, "gt-vote")
    seconds = time.perf_counter() - t0
    ev = evaluate_segmentation(row, scene)
    return {"row": name, **_scores(ev), "params_mb": 0.0, "seconds": seconds, "extractor": None,
            "lr_schedule": None}


def _scores(ev: dict) -> dict:
    """The evaluation figures every row reports: soft and hard-id mIoU, compactness, accuracy, FPS."""
    return {"miou": ev["miou"], "hard_id_miou": ev["hard_id_miou"], "accuracy": ev["accuracy"],
            "object_share": ev.get("compactness_object_share"), "segment_share": ev.get("compactness_segment_share"),
            "neighbour_agreement": ev.get("neighbour_agreement"), "raw_label_miou": ev.get("raw_label_miou"),
            "fps": ev["fps_rgb_seg"], "class_iou": ev["class_iou"]}


def run_row(run: Path, name: str, iterations: int, lr_schedule: str = "constant", suffix: str = "",
            seed: int = 0, extractor: str = "auto") -> dict:
    from coseg.cli.eval import load_run_scene
    from coseg.run import RunDir
    from coseg.segment.config import SegmentConfig
    from coseg.segment.evaluate import evaluate_segmentation
    from coseg.segment.stage import segment

    field, settings = ROWS[name]
    if field == "gt-vote":
        return oracle_row(run, name + suffix)
    if field == "coseg":
        settings = {**settings, "extractor": extractor}
    config = SegmentConfig(field=field, field_config=settings or None, iterations=iterations,
                           lr_schedule=lr_schedule, seed=seed)
    row = make_row_run(run, name + suffix)
    t0 = time.perf_counter()
    last = {}
    for rec in segment(row, config, overwrite=True):  # a row folder is this script's own scratch
        last = rec
    train_s = time.perf_counter() - t0
    scene = load_run_scene(RunDir.open(row), None)
    ev = evaluate_segmentation(row, scene)
    return {"row": name, **_scores(ev), "params_mb": last.get("learnable_params_mb"), "seconds": train_s,
            "extractor": last.get("feature_extractor"), "extract_s_per_image": last.get("extract_s_per_image"),
            "peak_rss_mb": last.get("peak_rss_mb"), "lr_schedule": lr_schedule, "seed": seed}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--iterations", type=int, default=6000)
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                   help="learning-rate schedule of every row (row folders get a -cosine suffix)")
    p.add_argument("--seed", type=int, default=0,
                   help="segmentation seed of every row (view order, sampling, initialisation); "
                        "row folders get a -seedN suffix when it is not 0")
    p.add_argument("--extractor", choices=["auto", "dino", "efficientnet", "appearance"], default="auto",
                   help="2D features of every row (row folders get a -NAME suffix when it is not auto)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        p.error(f"unknown rows {unknown} (known: {', '.join(ROWS)})")
    results = []
    print(f"{'row':<14} {'mIoU':>7} {'hard':>7} {'obj':>6} {'seg':>6} {'nbr':>6} {'acc':>7} {'params MB':>10} "
          f"{'FPS':>6} "
          f"{'time s':>8} {'RSS MB':>8}  features")
    for name in rows:
        suffix = "" if args.lr_schedule == "constant" else f"-{args.lr_schedule}"
        suffix += "" if args.extractor == "auto" else f"-{args.extractor}"
        suffix += f"-seed{args.seed}" if args.seed else ""
        r = run_row(args.run, name, args.iterations, args.lr_schedule, suffix, args.seed, args.extractor)
        results.append(r)
        if len(results) == 1 and r["raw_label_miou"] is not None:
            print(f"{'raw labels':<14} {100 * r['raw_label_miou']:7.2f}")
        print(f"{name:<14} {100 * r['miou']:7.2f} {100 * r['hard_id_miou']:7.2f} {_pct(r['object_share'])} "
              f"{_pct(r['segment_share'])} {_pct(r['neighbour_agreement'])} {100 * r['accuracy']:7.2f} "
              f"{r['params_mb'] or 0:10.3f} "
              f"{r['fps']:6.2f} {r['seconds']:8.0f} {r.get('peak_rss_mb') or 0:8.0f}  {r['extractor'] or '-'}",
              flush=True)
        print("  per class IoU: " + ", ".join(f"{k} {v:.2f}" for k, v in r["class_iou"].items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"iterations": args.iterations, "rows": results}, indent=2))
    return 0


def _pct(share: float | None) -> str:
    return f"{'-':>6}" if share is None else f"{100 * share:6.1f}"


if __name__ == "__main__":
    sys.exit(main())
