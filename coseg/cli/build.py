"""`coseg build`: the Gaussian Building Stage from the command line.

    coseg build SCENE --out RUN [--iterations N] [--set name=value ...]
    coseg build --resume RUN
    coseg build [SCENE] --import-ply FILE --out RUN

Ctrl-C stops after the current step and writes a checkpoint (a second Ctrl-C
aborts at once; the last checkpoint remains).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from coseg.errors import CosegError, InputError

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "build", help="train 3D Gaussians from posed images (or import a trained .ply)",
        description="Gaussian Building Stage: 3DGS optimisation on the CPU. Writes RUN/config.json "
                    "first, then checkpoints, gaussians.ply and metrics.json. See docs/building.md.")
    p.add_argument("scene", type=Path, nargs="?", help="scene folder (not needed with --resume)")
    p.add_argument("--out", type=Path, help="run folder to create")
    p.add_argument("--resume", type=Path, metavar="RUN", help="continue RUN from its newest checkpoint")
    p.add_argument("--import-ply", type=Path, metavar="FILE", help="import a trained 3DGS .ply, no training")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--iterations", type=int, help="number of training steps")
    p.add_argument("--downscale", type=int, help="integer image downscale")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--max-sh-degree", type=int, help="highest SH degree (0-3)")
    p.add_argument("--max-gaussians", type=int, help="cap on the Gaussian count")
    p.add_argument("--backend", help="render backend: auto, cpu, gsplat, inria")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="any BuildConfig field, e.g. --set lr_opacity=0.025 (repeatable)")
    p.set_defaults(func=run)


def config_from_args(args) -> "Any":
    """BuildConfig from the named options and --set overrides."""
    from coseg.building import BuildConfig

    values: dict[str, Any] = {}
    for name in ("iterations", "downscale", "seed", "max_sh_degree", "max_gaussians", "backend"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    fields = {f.name for f in dataclasses.fields(BuildConfig)}
    for item in args.set:
        name, sep, text = item.partition("=")
        if not sep or name not in fields:
            raise InputError(f"--set {item}: expected NAME=VALUE with NAME one of the BuildConfig fields")
        try:
            values[name] = json.loads(text)
        except json.JSONDecodeError:
            values[name] = text
    return BuildConfig(**values)


def run(args) -> int:
    from coseg.readers import read_scene
    from coseg.run import RunDir

    if args.resume is not None:
        if args.out is not None or args.import_ply is not None:
            raise CosegError("--resume RUN takes no --out or --import-ply")
        run_dir = RunDir.open(args.resume)
        header = run_dir.read_config()
        scene_path = args.scene or header.get("scene", {}).get("path")
        if not scene_path:
            raise InputError(f"{run_dir.config_path}: records no scene path; pass SCENE")
        scene = read_scene(Path(scene_path), downscale=int(header["scene"].get("downscale", 1)))
        return _train(scene, None, run_dir, resume=True)
    if args.out is None:
        raise CosegError("--out RUN is required (or --resume RUN)")
    if args.import_ply is not None:
        from coseg.building import import_ply

        run_dir = RunDir.create(args.out, args.scene, 1, overwrite=args.overwrite)
        with run_dir.lock(), run_dir.log_to_file():
            g = import_ply(args.import_ply, run_dir)
        print(f"imported {len(g)} Gaussians into {run_dir.path}")
        return 0
    if args.scene is None:
        raise CosegError("SCENE is required to train (or use --resume RUN / --import-ply FILE)")
    config = config_from_args(args)
    scene = read_scene(args.scene, downscale=config.downscale)
    run_dir = RunDir.create(args.out, args.scene, config.downscale, overwrite=args.overwrite)
    return _train(scene, config, run_dir, resume=False)


def _train(scene, config, run_dir, resume: bool) -> int:
    from tqdm import tqdm

    from coseg.building import BuildConfig, train
    from coseg.cli.stopping import stop_on_sigint

    last: dict[str, Any] = {}
    with stop_on_sigint("step") as stop:
        with run_dir.lock(), run_dir.log_to_file():
            bar = None
            for rec in train(scene, config or BuildConfig(), run_dir, stop, resume=resume):
                if bar is None:
                    bar = tqdm(total=rec["iterations"], initial=max(rec["iteration"] - 1, 0),
                               unit="it", dynamic_ncols=True)
                bar.update(rec["iteration"] - bar.n)
                post = {"N": str(rec["num_gaussians"])}
                if rec["loss"] is not None:
                    post["loss"] = f"{rec['loss']:.4f}"
                if rec["psnr"] is not None:
                    post["psnr"] = f"{rec['psnr']:.2f}"
                bar.set_postfix(post, refresh=False)
                last = rec
            if bar is not None:
                bar.close()
    summary = last.get("summary", {})
    state = "stopped (resume with: coseg build --resume " + str(run_dir.path) + ")" \
        if last.get("event") == "stopped" else "done"
    print(f"{state}: {summary.get('iterations')} iterations, {summary.get('num_gaussians')} Gaussians, "
          f"{summary.get('train_time_s', 0):.0f} s, {summary.get('its_per_s', 0):.2f} it/s, "
          f"rasterisation {100 * summary.get('raster_share', 0):.0f}% of the time -> {run_dir.gaussians_path}")
    return 0
