"""`coseg render RUN --split test --what rgb|depth --out DIR`: one PNG per view."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "render", help="render a run's views to PNG files",
        description="Write one PNG per view of the split, named by the image stem. rgb: 8-bit colour; "
                    "depth: 16-bit z-depth in millimetres (0 = empty). Other stages add outputs.")
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("--split", default="test", choices=["train", "test", "val"], help="views to render")
    p.add_argument("--what", default="rgb",
                   help="what to render: rgb, depth, or an output a later stage registers "
                        "(coseg.building.evaluate.RENDER_OUTPUTS)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--scene", type=Path, help="scene folder (default: the one recorded in config.json)")
    p.add_argument("--backend", default="auto", help="render backend: auto, cpu, gsplat, inria")
    p.add_argument("--force", action="store_true", help="replace PNGs of an earlier render in --out")
    p.set_defaults(func=run)


def run(args) -> int:
    from tqdm import tqdm

    from coseg.building.evaluate import RenderContext, render_views, split_cameras
    from coseg.cli.eval import load_run_scene
    from coseg.errors import InputError
    from coseg.io.safety import check_output, inputs_of, os_errors, scene_inputs
    from coseg.run import RunDir

    run_dir = RunDir.open(args.run)
    scene = load_run_scene(run_dir, args.scene)
    check_output(args.out, inputs_of(run_dir.path) | scene_inputs(scene), "--out", kind="folder")
    cams = split_cameras(scene, args.split)
    existing = [args.out / f"{c.name}.png" for c in cams if (args.out / f"{c.name}.png").exists()]
    if existing and not args.force:
        raise InputError(f"{existing[0]}: already exists ({len(existing)} of the {len(cams)} PNGs would be "
                         f"replaced; use --force to replace them)")
    with os_errors(args.out, "cannot create the output folder"):
        args.out.mkdir(parents=True, exist_ok=True)
    ctx = RenderContext.load(run_dir, scene, args.backend)
    with tqdm(total=len(cams), unit="view") as bar:
        paths = render_views(ctx, cams, args.what, args.out, lambda done, total: bar.update(1))
    print(f"wrote {len(paths)} {args.what} images to {args.out}")
    return 0
