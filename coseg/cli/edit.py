"""`coseg edit` and `coseg export`: segment edits and export from the command line."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from coseg.errors import InputError

log = logging.getLogger(__name__)


class _Ordered(argparse.Action):
    """Collects (operation, values) in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        ops = getattr(namespace, "ops", None) or []
        ops.append((self.dest, values))
        namespace.ops = ops


def _vec3(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != 3 or not np.isfinite(vals).all():
        raise InputError(f"{what} {text!r}: expected three numbers like 0.1,0,-0.2")
    return vals


def _seg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"segment id {text!r} is not an integer") from None


def add_parser(sub) -> None:
    p = sub.add_parser(
        "edit", help="delete / move / rotate / recolour / duplicate segments and write a PLY",
        description="Apply segment edits in the order given and write the result. "
                    "Rotation is in degrees about x, y, z (R = Rz·Ry·Rx) around the segment's centre.")
    p.add_argument("input", type=Path, help="run folder or 3DGS .ply with a segment property")
    p.add_argument("--delete", nargs="+", metavar="ID", action=_Ordered, dest="delete")
    p.add_argument("--move", nargs=2, metavar=("ID", "DX,DY,DZ"), action=_Ordered, dest="move")
    p.add_argument("--rotate", nargs=2, metavar=("ID", "RX,RY,RZ"), action=_Ordered, dest="rotate")
    p.add_argument("--recolor", nargs=2, metavar=("ID", "#RRGGBB"), action=_Ordered, dest="recolor")
    p.add_argument("--duplicate", nargs="+", metavar="ID", action=_Ordered, dest="duplicate")
    _output_args(p)
    p.set_defaults(func=run_edit, ops=None)

    e = sub.add_parser("export", help="export a run or Gaussian file as PLY, plain PLY, compressed PLY, .spz or .splat",
                       description="Export Gaussians; --segments keeps only those segments.")
    e.add_argument("input", type=Path, help="run folder or Gaussian file (.ply, .spz, .splat)")
    e.add_argument("--segments", nargs="+", type=int, metavar="ID", help="export only these segments")
    _output_args(e)
    e.set_defaults(func=run_export)


def _output_args(p) -> None:
    p.add_argument("--out", type=Path, required=True,
                   help="output file (.ply, .compressed.ply, .spz or .splat)")
    p.add_argument("--format", choices=["ply", "ply-plain", "ply-compressed", "spz", "splat"],
                   help="output format (default: from the file name; ply-plain omits the segment property; "
                        "ply-compressed is PlayCanvas/SuperSplat's compressed PLY)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def run_edit(args) -> int:
    from coseg.edit import EditDocument, export_gaussians, load_gaussians
    from coseg.edit.io import resolve_gaussians_path
    from coseg.edit.ops import parse_color

    if not args.ops:
        raise InputError("no edit given (use --delete, --move, --rotate, --recolor or --duplicate)")
    src = resolve_gaussians_path(args.input)
    g = load_gaussians(src)
    if g.segments is None:
        raise InputError(f"{src}: has no 'segment' property; segment it first (coseg segment)")
    doc = EditDocument(g)
    known = set(doc.segment_ids().tolist())
    for op, vals in args.ops:
        ids = [_seg(v) for v in (vals if op in ("delete", "duplicate") else vals[:1])]
        missing = sorted(set(ids) - known)
        if missing:
            raise InputError(f"--{op}: segment {missing[0]} does not exist in {src} "
                             f"(segments: {', '.join(map(str, sorted(known)))})")
        if op == "delete":
            doc.delete(ids)
        elif op == "move":
            doc.translate(ids, _vec3(vals[1], "--move"))
        elif op == "rotate":
            doc.rotate(ids, _vec3(vals[1], "--rotate"))
        elif op == "recolor":
            try:
                doc.recolor(ids, parse_color(vals[1]))
            except ValueError as e:
                raise InputError(f"--recolor: {e}") from None
        elif op == "duplicate":
            known.update(doc.duplicate(ids))
    out = export_gaussians(doc.result(), args.out, args.format, inputs=(src,), force=args.force)
    print(f"wrote {out}: {int((~doc.deleted).sum())} Gaussians after {len(doc.ops)} edits")
    return 0


def run_export(args) -> int:
    from coseg.edit import export_gaussians, load_gaussians
    from coseg.edit.io import resolve_gaussians_path

    src = resolve_gaussians_path(args.input)
    g = load_gaussians(src)
    if args.segments:
        if g.segments is None:
            raise InputError(f"{src}: has no 'segment' property, cannot select --segments")
        keep = np.isin(g.segments, args.segments)
        if not keep.any():
            raise InputError(f"{src}: none of the segments {args.segments} exist")
        g = g.subset(keep)
    out = export_gaussians(g, args.out, args.format, inputs=(src,), force=args.force)
    print(f"wrote {out}: {len(g)} Gaussians")
    return 0
