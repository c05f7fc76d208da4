"""`coseg synth OUT`: generate the procedural demo scene (see docs/demo-scene.md)."""

from __future__ import annotations

from pathlib import Path


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
    p.set_defaults(func=run)


def run(args) -> int:
    from tqdm import tqdm

    from coseg.cli.options import named_options
    from coseg.synth import SynthConfig, generate, parse_size
    from coseg.synth.writer import check_target

    width, height = parse_size(args.size)
    cfg = SynthConfig(seed=args.seed, views=args.views, test_views=args.test_views,
                      width=width, height=height, kind=args.kind, sky=args.sky, texture_detail=args.texture_detail)
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
