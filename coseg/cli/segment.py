"""`coseg segment RUN` and `coseg run SCENE --out RUN` (build + segment + eval).

Ctrl-C stops after the current iteration and writes a checkpoint; `--resume`
continues it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from coseg.errors import CosegError

log = logging.getLogger(__name__)


def _segment_args(p) -> None:
    g = p.add_argument_group("segmentation")
    g.add_argument("--field", choices=["coseg", "per-gaussian", "label-vote"], default="coseg",
                   help="segmentation field: the paper's decoder, the Gaussian Grouping baseline, or the "
                        "training-free vote of the raw labels onto the Gaussians (a reference)")
    g.add_argument("--seg-iterations", type=int, default=6000, help="segmentation iterations (paper: 6000)")
    g.add_argument("--lr-schedule", choices=["constant", "cosine"], default=None,
                   help="learning rate over the iterations (default constant, the paper's Adam 1e-3; "
                        "cosine decays every rate to 1%% of its start)")
    g.add_argument("--extractor", choices=["auto", "dino", "efficientnet", "appearance"], default="auto",
                   help="2D features (auto: DINO if its weights are present, else the offline ImageNet "
                        "EfficientNet-Lite0; appearance: weight-free colour/texture cues)")
    g.add_argument("--dino-model", choices=["vits8", "vitb8", "dinov2_vits14", "dinov2_vits14_reg"],
                   default="vits8", help="DINO architecture; the checkpoint must match it")
    g.add_argument("--dino-weights", type=Path,
                   help="DINO checkpoint path (default: the official file in the torch hub cache)")
    g.add_argument("--loss", choices=["js", "ce"], default="js", help="pixel loss (ce: ablation)")
    g.add_argument("--pi-label", type=float, help="JS loss weight of the raw label (default 0.5)")
    g.add_argument("--class-balance", type=float,
                   help="exponent beta of the pixel-loss class weights freq**-beta (0 = off, the paper's plain mean)")
    g.add_argument("--no-dino", action="store_true", help="ablation: no unprojected 2D features")
    g.add_argument("--no-spatial", action="store_true", help="ablation: no RandLA-Net spatial features")
    g.add_argument("--single-scale", action="store_true", help="ablation: one fusion level")
    g.add_argument("--attendance-tau", type=float, help="attendance-rate pruning threshold (default 1e-6)")
    g.add_argument("--spatial-weights", default="shipped",
                   help='RandLA-Net weights: "shipped", "random" or a checkpoint path')
    g.add_argument("--seg-seed", type=int, default=0, help="seed of the segmentation stage")


def add_parser(sub) -> None:
    p = sub.add_parser("segment", help="learn the segmentation field of a built run (CoSegGaussians)",
                       description="Segmentation Learning Stage: features, unprojection, spatial "
                                   "encoder, fusion decoder, CoSeg loss. Writes segmented.ply.")
    p.add_argument("run", type=Path, help="run folder with gaussians.ply (from coseg build)")
    p.add_argument("--resume", action="store_true", help="continue from the stage's checkpoint")
    p.add_argument("--no-eval", action="store_true", help="skip the test-view evaluation")
    _segment_args(p)
    p.set_defaults(func=run_segment)

    r = sub.add_parser("run", help="build + segment + evaluate a scene in one go",
                       description="coseg build SCENE --out RUN, then coseg segment RUN, then coseg eval RUN.")
    r.add_argument("scene", type=Path, help="scene folder")
    r.add_argument("--out", type=Path, required=True, help="run folder to create")
    r.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    r.add_argument("--iterations", type=int, help="building iterations")
    r.add_argument("--import-ply", type=Path, metavar="FILE", help="skip training: import a trained .ply")
    _segment_args(r)
    r.set_defaults(func=run_pipeline)


def config_from_args(args):
    from coseg.segment.config import SegmentConfig
    from coseg.segment.losses import CoSegLossConfig

    loss = {"pixel_loss": args.loss}
    if args.pi_label is not None:
        loss["pi_label"] = args.pi_label
    if args.class_balance is not None:
        loss["class_balance"] = args.class_balance
    values = dict(field=args.field, iterations=args.seg_iterations, extractor=args.extractor,
                  dino_model=args.dino_model,
                  use_dino=not args.no_dino, use_spatial=not args.no_spatial,
                  single_scale=args.single_scale, spatial_weights=args.spatial_weights,
                  seed=args.seg_seed, loss=CoSegLossConfig(**loss))
    if args.dino_weights is not None:
        values["dino_weights"] = str(args.dino_weights)
    if args.attendance_tau is not None:
        values["attendance_tau"] = args.attendance_tau
    if args.lr_schedule is not None:
        values["lr_schedule"] = args.lr_schedule
    return SegmentConfig(**values)


def drive_segmentation(run_dir: Path, config, resume: bool = False) -> dict:
    """Run the stage with a progress bar; returns the final record."""
    from tqdm import tqdm

    from coseg.run import RunDir
    from coseg.cli.stopping import stop_on_sigint
    from coseg.segment.stage import segment

    run = RunDir.open(run_dir)
    last: dict = {}
    bar = None
    with stop_on_sigint("iteration") as stop, run.lock(), run.log_to_file():
        for rec in segment(run_dir, config, stop, resume=resume):
            stage = rec["stage"]
            if stage in ("features", "spatial"):
                if rec["view"] == 1:
                    log.info("%s: %d views", "2D features" if stage == "features" else "spatial encoder",
                             rec["views"])
            elif stage == "train":
                if bar is None:
                    bar = tqdm(total=rec["iterations"], unit="it", dynamic_ncols=True, desc="segment")
                bar.update(rec["iteration"] - bar.n)
                bar.set_postfix(loss=f"{rec['loss']:.4f}", pix=f"{rec['pix']:.4f}", reg=f"{rec['reg']:.4f}",
                                refresh=False)
            last = rec
        if bar is not None:
            bar.close()
    if last.get("stage") == "stopped":
        print(f"stopped at iteration {last['iteration']} (resume with: coseg segment {run_dir} --resume)")
    return last


def _print_eval(run_dir: Path) -> None:
    import argparse

    from coseg.cli import eval as eval_cli

    eval_cli.run(argparse.Namespace(run=Path(run_dir), scene=None, backend="auto"))


def run_segment(args) -> int:
    last = drive_segmentation(args.run, config_from_args(args), resume=args.resume)
    if last.get("stage") != "done":
        return 0 if last.get("stage") == "stopped" else 1
    print(f"segmented: {last.get('kept')} Gaussians in {len(last.get('segments', {}))} segments, "
          f"{last.get('segmentation_total_s', 0):.0f} s -> {Path(args.run) / 'segmented.ply'}")
    if not args.no_eval:
        _print_eval(args.run)
    return 0


def run_pipeline(args) -> int:
    from coseg.cli import build as build_cli

    rc = build_cli.run(_build_namespace(args))
    if rc:
        return rc
    if not (Path(args.out) / "gaussians.ply").exists():
        raise CosegError(f"{args.out}: the building stage did not finish; resume it with "
                         f"coseg build --resume {args.out}, then run coseg segment {args.out}")
    last = drive_segmentation(args.out, config_from_args(args))
    if last.get("stage") == "done":
        _print_eval(args.out)
    return 0


def _build_namespace(args):
    import argparse

    return argparse.Namespace(
        scene=args.scene, out=args.out, resume=None, import_ply=args.import_ply,
        overwrite=args.overwrite, iterations=args.iterations, downscale=None, seed=None,
        max_sh_degree=None, max_gaussians=None, backend=None, set=[])
