"""The `coseg` command line.

Each subcommand lives in its own module under `coseg.cli` exposing
``add_parser(subparsers)`` (which sets ``func``) — listed in `COMMANDS`. A
subcommand is only listed once it works. Errors are one line on stderr and a
non-zero exit code.

Every command (and every stage task of `coseg batch`) builds the whole parser
first, so a command module imports at its top, and in ``add_parser``, only
light modules (settings dataclasses, constants: no torch, numba, cv2, scipy,
...); ``func`` imports the implementation when the command runs
(`tests/test_cli_startup.py`).

Exit codes (docs/data-safety.md): 0 done, 1 error (one line on stderr), 2 bad
usage (argparse), `EXIT_STOPPED` = 130 a long stage stopped by Ctrl-C (its
checkpoint is kept and its result is not written: resume it with ``--resume``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from coseg.errors import CosegError

EXIT_STOPPED = 130
"""Exit code of a stage stopped by Ctrl-C (SIGINT's shell convention, 128 + 2)."""

#: Subcommand modules, in --help order.
COMMANDS = ["synth", "info", "poses", "build", "labels", "segment", "eval", "render", "edit", "batch", "bench",
            "pretrain_spatial"]


def build_parser() -> argparse.ArgumentParser:
    from coseg import __version__

    parser = argparse.ArgumentParser(
        prog="coseg",
        description="CoSeg: zero-shot 3D Gaussian Splatting segmentation (CoSegGaussians).",
    )
    parser.add_argument("--version", action="version", version=f"coseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"coseg.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else (logging.WARNING if args.quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CosegError as e:
        print(f"coseg {args.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a read or write the command did not wrap itself: still one line
        from coseg.io.safety import os_error_line

        print(f"coseg {args.command}: error: {os_error_line('?', e, 'failed')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"coseg {args.command}: interrupted", file=sys.stderr)
        return EXIT_STOPPED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
