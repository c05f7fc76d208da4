"""`coseg segment RUN` and `coseg run SCENE --out RUN` (build + segment + eval).

Both are `coseg.pipeline` pipelines: every input is checked before the first
stage starts. Ctrl-C stops after the current iteration and writes a
checkpoint (exit code 130, no result written); `--resume` continues it.
Segmenting a segmented run again needs `--overwrite` (docs/data-safety.md).
"""

from __future__ import annotations

from pathlib import Path

from coseg.cli.scene_options import add_scene_options, settings_from_args
from coseg.errors import CosegError


def _segment_args(p) -> None:
    g = p.add_argument_group("segmentation")
    g.add_argument("--field", default="coseg",
                   help="segmentation field: coseg (the paper's decoder), per-gaussian (the Gaussian Grouping "
                        "baseline), label-vote (the training-free vote of the raw labels onto the Gaussians, a "
                        "reference), or a field added by a plugin")
    g.add_argument("--seg-iterations", type=int, default=6000, help="segmentation iterations (paper: 6000)")
    g.add_argument("--lr-schedule", choices=["constant", "cosine"], default=None,
                   help="learning rate over the iterations (default constant, the paper's Adam 1e-3; "
                        "cosine decays every rate to 1%% of its start)")
    g.add_argument("--attendance-tau", type=float, help="attendance-rate pruning threshold (default 1e-6)")
    g.add_argument("--seg-seed", type=int, default=0, help="seed of the segmentation stage")
    g.add_argument("--labels", choices=["auto", "semantic", "instance_masks"], default="auto",
                   help="raw labels: labels/ class maps, or per-view instance masks associated through the "
                        "Gaussians (auto: labels/ when present, else masks; docs/labels.md)")
    g.add_argument("--masks", type=Path, metavar="DIR",
                   help="instance-mask folder (default RUN/masks, else SCENE/masks)")
    g.add_argument("--association-iou", type=float,
                   help="masks of two views join one segment at this Gaussian-set IoU (default 0.3)")
    g.add_argument("--max-segments", type=int, help="most associated segments the field predicts (default 100)")
    c = p.add_argument_group("CoSeg field (--field coseg)")
    c.add_argument("--extractor", choices=["auto", "dino", "efficientnet", "appearance"],
                   help="2D features (default auto: DINO if its weights are present, else the offline ImageNet "
                        "EfficientNet-Lite0; appearance: weight-free colour/texture cues)")
    c.add_argument("--dino-model", choices=["vits8", "vitb8", "dinov2_vits14", "dinov2_vits14_reg"],
                   help="DINO architecture (default vits8); the checkpoint must match it")
    c.add_argument("--dino-weights", type=Path,
                   help="DINO checkpoint path (default: the official file in the torch hub cache)")
    c.add_argument("--feature-norm", choices=["l2", "rms"],
                   help="2D features after the PCA: l2 per vector (the paper) or rms, one constant per scale "
                        "(docs/method.md)")
    c.add_argument("--loss", choices=["js", "ce"], help="pixel loss (default js; ce: ablation)")
    c.add_argument("--pi-label", type=float, help="JS loss weight of the raw label (default 0.5)")
    c.add_argument("--class-balance", type=float,
                   help="exponent beta of the pixel-loss class weights freq**-beta (0 = off, the paper's plain mean)")
    c.add_argument("--lambda-logits", type=float,
                   help="weight of the 3D regulariser on the output logits (Gaussian Grouping's; "
                        "not in the paper; docs/method.md)")
    c.add_argument("--no-dino", action="store_true", help="ablation: no unprojected 2D features")
    c.add_argument("--no-spatial", action="store_true", help="ablation: no RandLA-Net spatial features")
    c.add_argument("--single-scale", action="store_true", help="ablation: one fusion level")
    c.add_argument("--spatial-weights", help='RandLA-Net weights: "shipped" (default), "random" or a checkpoint path')


def add_parser(sub) -> None:
    p = sub.add_parser("segment", help="learn the segmentation field of a built run (CoSegGaussians)",
                       description="Segmentation Learning Stage: features, unprojection, spatial "
                                   "encoder, fusion decoder, CoSeg loss. Writes segmented.ply.")
    p.add_argument("run", type=Path, help="run folder with gaussians.ply (from coseg build)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the stage's checkpoint (after Ctrl-C, exit code 130), with the "
                        "settings it was started with")
    p.add_argument("--overwrite", action="store_true",
                   help="segment again: the old segmentation is kept in RUN/previous/ until the new one is complete")
    p.add_argument("--no-eval", action="store_true", help="skip the test-view evaluation")
    _segment_args(p)
    p.set_defaults(func=run_segment)

    r = sub.add_parser("run", help="build + segment + evaluate a scene in one go",
                       description="coseg build SCENE --out RUN, then coseg segment RUN, then coseg eval RUN. "
                                   "Given a folder of bare photos instead of a scene, the cameras are "
                                   "recovered first (as coseg poses PHOTOS --out RUN/scene; the photos are "
                                   "only read) and, as photos carry no label maps, zero-shot masks are "
                                   "made after the build (the labels stage, RUN/masks) for the segment "
                                   "stage to learn from. Every input the stages need (scene, labels, options) is "
                                   "checked before the first starts; a stopped stage (Ctrl-C, exit code 130) "
                                   "ends the run.")
    r.add_argument("scene", type=Path, help="scene folder, or a folder of photos without poses")
    r.add_argument("--out", type=Path, required=True, help="run folder to create")
    r.add_argument("--overwrite", action="store_true",
                   help="run every stage again in an existing run (old results kept in RUN/previous/)")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in --out: skip completed stages, resume a stopped one, run the rest")
    r.add_argument("--iterations", type=int, help="building iterations")
    r.add_argument("--minutes", type=float,
                   help="building time budget: iterations and Gaussian cap chosen to fit (coseg build --minutes)")
    r.add_argument("--import-ply", type=Path, metavar="FILE", help="skip training: import a trained .ply")
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="any BuildConfig field of the build stage, e.g. --set lr_opacity=0.025 (repeatable)")
    r.add_argument("--stages", metavar="NAMES",
                   help="only these stages, comma-separated, run in the pipeline's order (default: all of "
                        "them; e.g. --stages segment,eval on a built run)")
    _segment_args(r)
    add_scene_options(r)
    from coseg.cli.poses import RUN_NAMES, add_sfm_args

    add_sfm_args(r.add_argument_group("cameras of bare photos (the poses stage, as coseg poses)"), RUN_NAMES)
    from coseg.cli.labels import add_generator_args

    add_generator_args(r)
    r.set_defaults(func=run_pipeline, seed=None, max_sh_degree=None, max_gaussians=None, backend=None)


#: CLI options of the CoSeg field -> its settings (the loss's are nested under "loss").
_COSEG_OPTIONS = {"extractor": "extractor", "dino_model": "dino_model", "dino_weights": "dino_weights",
                  "spatial_weights": "spatial_weights", "loss": "loss.pixel_loss", "pi_label": "loss.pi_label",
                  "class_balance": "loss.class_balance", "feature_norm": "feature_norm",
                  "lambda_logits": "loss.lambda_logits"}
_COSEG_SWITCHES = {"no_dino": ("use_dino", False), "no_spatial": ("use_spatial", False),
                   "single_scale": ("single_scale", True)}


def config_from_args(args):
    """The stage's settings from the parsed options; a CoSeg option given to another field is an error."""
    from coseg.cli.options import named_options
    from coseg.errors import InputError
    from coseg.segment.config import SegmentConfig

    field_config: dict = {}
    given = []
    for opt, key in _COSEG_OPTIONS.items():
        value = getattr(args, opt)
        if value is not None:
            given.append(opt)
            section, _, name = key.rpartition(".")
            (field_config.setdefault(section, {}) if section else field_config)[name] = (
                str(value) if isinstance(value, Path) else value)
    for opt, (key, value) in _COSEG_SWITCHES.items():
        if getattr(args, opt):
            given.append(opt)
            field_config[key] = value
    if given and args.field != "coseg":
        flags = ", ".join("--" + opt.replace("_", "-") for opt in given)
        raise InputError(f"{flags}: settings of --field coseg, not of --field {args.field}")
    values = dict(field=args.field, field_config=field_config or None, iterations=args.seg_iterations,
                  seed=args.seg_seed, labels=args.labels, masks=None if args.masks is None else str(args.masks))
    if args.association_iou is not None:
        values["association_iou"] = args.association_iou
    if args.max_segments is not None:
        values["max_segments"] = args.max_segments
    if args.attendance_tau is not None:
        values["attendance_tau"] = args.attendance_tau
    if args.lr_schedule is not None:
        values["lr_schedule"] = args.lr_schedule
    with named_options(_OPTIONS):
        return SegmentConfig(**values)


#: Segmentation and loss settings -> the option that sets them.
_OPTIONS = {"field": "--field", "iterations": "--seg-iterations", "lr_schedule": "--lr-schedule",
            "extractor": "--extractor", "dino_weights": "--dino-weights", "pixel_loss": "--loss",
            "pi_label": "--pi-label", "class_balance": "--class-balance", "attendance_tau": "--attendance-tau",
            "spatial_weights": "--spatial-weights", "seed": "--seg-seed", "labels": "--labels",
            "association_iou": "--association-iou", "max_segments": "--max-segments",
            "feature_norm": "--feature-norm", "lambda_logits": "--lambda-logits"}


def run_segment(args) -> int:
    from coseg.cli.drive import drive
    from coseg.pipeline import Pipeline, PipelineRequest

    request = PipelineRequest(out=args.run, segment=config_from_args(args), resume=args.resume,
                              overwrite=args.overwrite)
    return drive(Pipeline(request, ("segment",) if args.no_eval else ("segment", "eval")))


def pipeline_from_args(args):
    """The `coseg.pipeline.Pipeline` of a parsed `coseg run` command line."""
    from coseg.cli.build import config_from_args as build_config_from_args
    from coseg.pipeline import STAGES, Pipeline, PipelineRequest

    from coseg.cli.labels import generator_from_args

    stages = tuple(STAGES)
    if args.stages is not None:
        asked = [name.strip() for name in args.stages.split(",") if name.strip()]
        unknown = [name for name in asked if name not in STAGES]
        if unknown or not asked:
            raise CosegError(f"--stages {args.stages}: stages are {', '.join(STAGES)}")
        stages = tuple(name for name in STAGES if name in asked)
    from coseg.cli.poses import sfm_config_from_args

    request = PipelineRequest(out=args.out, scene=args.scene, build=build_config_from_args(args),
                              segment=config_from_args(args), poses=sfm_config_from_args(args),
                              import_ply=args.import_ply,
                              overwrite=args.overwrite, resume=args.resume, strict_resume=False,
                              reading=settings_from_args(args), cache=args.cache,
                              label_generator=lambda: generator_from_args(args))
    return Pipeline(request, stages)


def run_pipeline(args) -> int:
    from coseg.cli.drive import drive

    return drive(pipeline_from_args(args))
