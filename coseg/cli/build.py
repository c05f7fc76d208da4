"""`coseg build`: the Gaussian Building Stage from the command line.

    coseg build SCENE --out RUN [--minutes M] [--iterations N] [--set name=value ...]
    coseg build --resume RUN
    coseg build [SCENE] --import-ply FILE --out RUN

Ctrl-C stops after the current step and writes a checkpoint (a second Ctrl-C
aborts at once; the last checkpoint remains); the exit code is then 130 and no
gaussians.ply is written. Building again into a run that has a result needs
--overwrite; the old result is kept in RUN/previous/ (docs/data-safety.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from coseg.cli.scene_options import add_scene_options, given, settings_from_args
from coseg.errors import CosegError, InputError

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "build", help="train 3D Gaussians from posed images (or import a trained .ply)",
        description="Gaussian Building Stage: 3DGS optimisation on the CPU. Writes RUN/config.json "
                    "first, then checkpoints, gaussians.ply and metrics.json. See docs/building.md.")
    p.add_argument("scene", type=Path, nargs="?", help="scene folder (not needed with --resume)")
    p.add_argument("--out", type=Path, help="run folder to create")
    p.add_argument("--resume", type=Path, metavar="RUN",
                   help="continue RUN from its newest checkpoint (after Ctrl-C, exit code 130)")
    p.add_argument("--import-ply", type=Path, metavar="FILE", help="import a trained 3DGS .ply, no training")
    p.add_argument("--overwrite", action="store_true",
                   help="build again into the run in --out (its old result is kept in RUN/previous/)")
    p.add_argument("--minutes", type=float,
                   help="time budget: iterations and Gaussian cap (unless given) are chosen to finish in "
                        "about this many minutes on this machine, after timing a few steps")
    p.add_argument("--iterations", type=int, help="number of training steps (default 3000)")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--max-sh-degree", type=int, help="highest SH degree (0-3)")
    p.add_argument("--max-gaussians", type=int,
                   help="cap on the Gaussian count (default: one per 80 training pixels)")
    p.add_argument("--backend", help="render backend: auto, cpu, gsplat, inria")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="any BuildConfig field, e.g. --set lr_opacity=0.025 (repeatable)")
    add_scene_options(p)
    p.set_defaults(func=run)


#: BuildConfig fields with their own option (the rest are set with --set NAME=VALUE).
_NAMED = ("iterations", "minutes", "seed", "max_sh_degree", "max_gaussians", "backend")


def config_from_args(args) -> "Any":
    """BuildConfig from the named options and --set overrides (values typed as JSON, then checked
    against the field types and ranges: a bad one is one line naming its option)."""
    from coseg.building import BuildConfig
    from coseg.cli.options import named_options

    values: dict[str, Any] = {}
    options = {}
    for name in _NAMED:
        if getattr(args, name) is not None:
            values[name], options[name] = getattr(args, name), "--" + name.replace("_", "-")
    if args.minutes is not None:
        # the budget chooses iterations and cap, except the ones given explicitly
        values["budget_fixed"] = [n for n in ("iterations", "max_gaussians") if getattr(args, n) is not None]
    fields = {f.name for f in dataclasses.fields(BuildConfig)}
    for item in args.set:
        name, sep, text = item.partition("=")
        if not sep or name not in fields:
            raise InputError(f"--set {item}: expected NAME=VALUE with NAME one of the BuildConfig fields")
        try:
            values[name] = json.loads(text)
        except json.JSONDecodeError:
            values[name] = text
        options[name] = f"--set {name}"
    with named_options(options):
        return BuildConfig(**values)


def run(args) -> int:
    from coseg.cli.drive import drive
    from coseg.pipeline import Pipeline, PipelineRequest

    if args.resume is not None:
        if args.out is not None or args.import_ply is not None:
            raise CosegError("--resume RUN takes no --out or --import-ply")
        if given(args):
            raise CosegError(f"--resume RUN reads the scene as the run records; {', '.join(given(args))} "
                             "cannot change that (build into a new --out instead)")
        request = PipelineRequest(out=args.resume, scene=args.scene, resume=True)
    else:
        if args.out is None:
            raise CosegError("--out RUN is required (or --resume RUN)")
        if args.scene is None and args.import_ply is None:
            raise CosegError("SCENE is required to train (or use --resume RUN / --import-ply FILE)")
        request = PipelineRequest(out=args.out, scene=args.scene, build=config_from_args(args),
                                  import_ply=args.import_ply, overwrite=args.overwrite,
                                  reading=settings_from_args(args), cache=args.cache)
    return drive(Pipeline(request, ("build",)))
