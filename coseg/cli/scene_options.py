"""Options every command that reads a scene folder shares (`coseg.scene_settings.ReadSettings`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from coseg.scene_settings import AUTO_MAX_SIDE, ReadSettings


def add_scene_options(parser: argparse.ArgumentParser, cache: bool = True) -> None:
    """Add --downscale, --resolution, --undistort-alpha, --missing-images (and --cache)."""
    g = parser.add_argument_group("reading the scene")
    g.add_argument("--downscale", type=float, metavar="F",
                   help="photo size / working size, any number >= 1 (default: automatic, the longest "
                        f"side capped at {AUTO_MAX_SIDE} px)")
    g.add_argument("--resolution", type=int, metavar="PX",
                   help="longest side of the working images in pixels (instead of --downscale)")
    g.add_argument("--undistort-alpha", type=float, metavar="A",
                   help="lens undistortion: 0 keeps only pixels that see the photo (crop, the default), "
                        "1 keeps the whole photo with masked borders")
    g.add_argument("--missing-images", choices=("skip", "error"),
                   help="frames whose image file is missing: skip them with a warning (default) or stop")
    if cache:
        g.add_argument("--cache", type=Path, metavar="DIR",
                       help="folder for undistorted / resized pixels (default: RUN/cache/pixels)")


_OPTIONS = ("downscale", "resolution", "undistort_alpha", "missing_images")


def settings_from_args(args: argparse.Namespace) -> ReadSettings:
    """ReadSettings from the options (unset ones keep their defaults); a bad value names its option."""
    from coseg.cli.options import named_options
    from coseg.errors import InputError

    if args.downscale is not None and args.resolution is not None:
        raise InputError("--downscale and --resolution both set the working resolution; give one")
    values = {name: getattr(args, name) for name in _OPTIONS if getattr(args, name) is not None}
    with named_options({name: "--" + name.replace("_", "-") for name in _OPTIONS}):
        return ReadSettings(**values)


def given(args: argparse.Namespace) -> list[str]:
    """The scene-reading options set on the command line (e.g. to refuse them with --resume)."""
    names = _OPTIONS + (("cache",) if hasattr(args, "cache") else ())
    return ["--" + n.replace("_", "-") for n in names if getattr(args, n, None) is not None]
