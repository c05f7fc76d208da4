"""`coseg synth OUT`: generate the procedural demo scene (see docs/demo-scene.md)."""

from __future__ import annotations

from pathlib import Path

from coseg.synth.presets import NOISE_PRESETS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "synth", help="generate a procedural demo scene (NeRF layout with labels, GT, depth)",
        description="Ray-cast a procedural indoor room (or an object group) on the CPU and write it "
                    "in the NeRF layout: images/, depth/*.npy, gt/, labels/ (simulated zero-shot "
                    "labels), points3d.ply, classes.json, transforms_train.json, transforms_test.json.")
    p.add_argument("out", type=Path, help="destination folder (absent or empty unless --force)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files (0)")
    p.add_argument("--views", type=int, default=64, help="training views (64)")
    p.add_argument("--test-views", type=int, default=16, help="test views, interleaved with the training path (16)")
    p.add_argument("--size", default="320x240", metavar="WxH", help="image size (320x240)")
    p.add_argument("--kind", choices=("room", "object", "outdoor"), default="room",
                   help="a furnished room seen from inside, an object group on black, or the group "
                        "on paving under an open sky (room)")
    p.add_argument("--sky", choices=("gradient", "white"), default="gradient",
                   help="sky of --kind outdoor: near-white horizon to pale blue, or plain white (gradient)")
    p.add_argument("--texture-detail", type=float, default=0.0, metavar="S",
                   help="contrast 0-1 of a fine texture layer that gives SIFT keypoints for `coseg poses` (0: off)")
    p.add_argument("--force", action="store_true", help="replace an existing scene folder at OUT")
    g = p.add_argument_group("simulated zero-shot labels (docs/demo-scene.md)")
    g.add_argument("--label-noise", choices=NOISE_PRESETS, default="mixed",
                   help="mixed (default): per-view and view-correlated errors; per-view: errors drawn "
                        "independently in every view; correlated: errors repeated over a range of viewpoints; "
                        "none: the GT")
    for flag, name, text in _CORRELATED_OPTIONS:
        g.add_argument(flag, type=float, dest=name, metavar="X", help=text)
    p.set_defaults(func=run)


#: Options of the view-correlated errors: (flag, LabelNoiseConfig setting, help).
_CORRELATED_OPTIONS = (
    ("--object-errors", "object_sector_probability",
     "probability that an object takes its look-alike class from one range of viewpoints (mixed 0.15, correlated 0.3)"),
    ("--part-errors", "part_sector_probability",
     "probability that a 3D part of an instance is confused from one range of viewpoints (mixed 0.1, correlated 0.2)"),
    ("--boundary-bias", "boundary_bias_probability",
     "probability that an instance's mask overshoots its edges depending on the view direction (0.3)"),
    ("--boundary-bias-px", "boundary_bias_px", "largest view-dependent overshoot, pixels at 320 wide (4)"),
    ("--sector-fraction", "sector_fraction",
     "share of the cameras seeing an instance that lie in its error range (0.4)"),
)


def run(args) -> int:
    from tqdm import tqdm

    from coseg.cli.options import named_options
    from coseg.synth import SynthConfig, generate, parse_size
    from coseg.synth.labels import noise_preset
    from coseg.synth.writer import check_target

    width, height = parse_size(args.size)
    overrides = {name: getattr(args, name) for _, name, _ in _CORRELATED_OPTIONS if getattr(args, name) is not None}
    cfg = SynthConfig(seed=args.seed, views=args.views, test_views=args.test_views,
                      width=width, height=height, kind=args.kind, sky=args.sky, texture_detail=args.texture_detail,
                      labels=noise_preset(args.label_noise, **overrides))
    with named_options({"seed": "--seed", "views": "--views", "test_views": "--test-views", "kind": "--kind",
                        "sky": "--sky"}):
        cfg.validate()
    check_target(args.out.absolute(), args.force)
    with tqdm(total=args.views + args.test_views, unit="view", desc="synth", leave=False) as bar:
        summary = generate(args.out, cfg, force=args.force, progress=lambda done, total: bar.update(1))
    print(f"{summary['path']}: {summary['views']['train']} train + {summary['views']['test']} test views, "
          f"{width}x{height}, {len(summary['classes'])} classes, "
          f"raw-label test mIoU {summary['raw_label_miou_test']:.3f}, {summary['seconds']:.1f} s")
    return 0
