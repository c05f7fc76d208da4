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


def _floats(text: str, count: int | tuple[int, ...], what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    counts = (count,) if isinstance(count, int) else count
    if len(vals) not in counts or not np.isfinite(vals).all():
        raise InputError(f"{what} {text!r}: expected {' or '.join(map(str, counts))} comma-separated numbers")
    return vals


SELECT_HELP = ("set the selection (in order with the other edits): segment:ID[,ID...], sphere:X,Y,Z,R, "
               "box:X0,Y0,Z0,X1,Y1,Z1, opacity:LO,HI, size:LO,HI (largest scale), all, none, invert; "
               "add:SPEC adds to the selection, remove:SPEC removes from it")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "edit", help="edit segments or selected splats (delete, move, rotate, scale, recolour, duplicate, "
                     "assign, merge, split, rename) and write the result",
        description="Apply edits in the order given and write the result. Segment edits name segment ids; "
                    "--select sets a splat selection that --assign, --delete-selected and --grow/--shrink use. "
                    "Rotation is in degrees about x, y, z (R = Rz·Ry·Rx) around the segment's centre. "
                    "INPUT may be a studio project (.cosegproj): its edits are replayed on its source first.")
    p.add_argument("input", type=Path, help="run folder, Gaussian file with a segment property, or .cosegproj")
    p.add_argument("--delete", nargs="+", metavar="ID", action=_Ordered, dest="delete")
    p.add_argument("--move", nargs=2, metavar=("ID", "DX,DY,DZ"), action=_Ordered, dest="move")
    p.add_argument("--rotate", nargs=2, metavar=("ID", "RX,RY,RZ"), action=_Ordered, dest="rotate")
    p.add_argument("--scale", nargs=2, metavar=("ID", "FACTOR"), action=_Ordered, dest="scale",
                   help="scale a segment's positions and splats about its centre")
    p.add_argument("--recolor", nargs=2, metavar=("ID", "#RRGGBB"), action=_Ordered, dest="recolor")
    p.add_argument("--duplicate", nargs="+", metavar="ID", action=_Ordered, dest="duplicate")
    p.add_argument("--select", nargs=1, metavar="SPEC", action=_Ordered, dest="select", help=SELECT_HELP)
    p.add_argument("--grow", nargs=0, action=_Ordered, dest="grow",
                   help="grow the selection by one neighbour radius (2 x the median spacing)")
    p.add_argument("--shrink", nargs=0, action=_Ordered, dest="shrink", help="shrink the selection likewise")
    p.add_argument("--assign", nargs=1, metavar="ID|new[:NAME]", action=_Ordered, dest="assign",
                   help="give the selected splats segment ID, or a new segment (optionally named)")
    p.add_argument("--delete-selected", nargs=0, action=_Ordered, dest="delete_selected")
    p.add_argument("--merge", nargs="+", metavar="ID", action=_Ordered, dest="merge",
                   help="merge the segments into the first one")
    p.add_argument("--split", nargs="+", metavar=("ID", "RADIUS"), action=_Ordered, dest="split",
                   help="split a segment into its 3D-connected parts (radius default: 3 x its median spacing)")
    p.add_argument("--rename", nargs=2, metavar=("ID", "NAME"), action=_Ordered, dest="rename")
    p.add_argument("--save-project", type=Path, metavar="OUT.cosegproj",
                   help="also write a studio project with these edits and the segment names")
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


def _open_document(path: Path):
    """(document, source path, replayed ops) of a run folder, Gaussian file or studio project."""
    from coseg.edit import EditDocument, load_gaussians
    from coseg.edit.io import resolve_gaussians_path
    from coseg.edit.project import PROJECT_SUFFIX, check_fits, load_project

    if str(path).endswith(PROJECT_SUFFIX):
        project = load_project(path)
        src = resolve_gaussians_path(project.source)
        names = {int(k): str(v) for k, v in (project.view.get("names") or {}).items()}
        g = load_gaussians(src)
        check_fits(project, g, path)
        doc = EditDocument(g, names)
        try:
            doc.replay(project.ops)
        except (ValueError, KeyError) as e:
            raise InputError(f"{path}: cannot replay the project's edits ({e})") from None
        return doc, src
    src = resolve_gaussians_path(path)
    g = load_gaussians(src)
    if g.segments is None:
        raise InputError(f"{src}: has no 'segment' property; segment it first (coseg segment)")
    names = {}
    classes = src.parent / "classes.json"
    if classes.exists():
        from coseg.scene import read_classes_json

        names = read_classes_json(classes)
    return EditDocument(g, names), src


def _selection(doc, current: np.ndarray, spec: str) -> np.ndarray:
    from coseg.edit import selection as sel

    how, body = "replace", spec
    for prefix in ("add", "remove"):
        if spec.startswith(prefix + ":"):
            how, body = prefix, spec[len(prefix) + 1:]
    kind, _, arg = body.partition(":")
    g, live = doc.gaussians, ~doc.deleted
    if kind == "all":
        picked = live
    elif kind == "none":
        picked = np.zeros(len(g), bool)
    elif kind == "invert":
        return live & ~current
    elif kind == "segment":
        picked = np.isin(doc.segments, [_seg(v) for v in arg.split(",")])
    elif kind == "sphere":
        x, y, z, r = _floats(arg, 4, "--select sphere")
        if r <= 0:
            raise InputError(f"--select sphere:{arg}: the radius must be positive")
        picked = sel.in_sphere(g.means, (x, y, z), r)
    elif kind == "box":
        v = np.array(_floats(arg, 6, "--select box"))
        lo, hi = np.minimum(v[:3], v[3:]), np.maximum(v[:3], v[3:])
        picked = sel.in_box(g.means, (lo + hi) / 2, (hi - lo) / 2)
    elif kind == "opacity":
        picked = sel.by_opacity(g.opacities, *_floats(arg, 2, "--select opacity"))
    elif kind == "size":
        picked = sel.by_size(g.log_scales, *_floats(arg, 2, "--select size"))
    else:
        raise InputError(f"--select {spec!r}: unknown selection (see coseg edit --help)")
    return sel.combine(current, picked, how, live)


def _apply(doc, op: str, vals: list[str], selected: np.ndarray, known: set[int]) -> np.ndarray:
    """Apply one command-line edit; returns the selection after it."""
    from coseg.edit import selection as sel
    from coseg.edit.ops import parse_color
    from coseg.edit.segments import median_spacing

    if op == "select":
        return _selection(doc, selected, vals[0])
    if op in ("grow", "shrink"):
        radius = 2.0 * median_spacing(doc.gaussians.means[~doc.deleted])
        return (sel.grow if op == "grow" else sel.shrink)(doc.gaussians.means, selected, radius, ~doc.deleted)
    if op == "delete_selected":
        doc.delete_rows(np.flatnonzero(selected))
        return np.zeros(len(doc), bool)
    if op == "assign":
        target, _, name = vals[0].partition(":")
        doc.assign(np.flatnonzero(selected), None if target == "new" else _seg(target), name or None)
        return selected
    ids = [_seg(v) for v in (vals if op in ("delete", "duplicate", "merge") else vals[:1])]
    missing = sorted(set(ids) - known)
    if missing:
        raise InputError(f"--{op}: segment {missing[0]} does not exist "
                         f"(segments: {', '.join(map(str, sorted(known)))})")
    if op == "delete":
        doc.delete(ids)
    elif op == "move":
        doc.translate(ids, _vec3(vals[1], "--move"))
    elif op == "rotate":
        doc.rotate(ids, _vec3(vals[1], "--rotate"))
    elif op == "scale":
        factor = _floats(vals[1], 1, "--scale")[0]
        if factor <= 0:
            raise InputError(f"--scale {vals[1]}: the factor must be positive")
        rows = doc.rows_of(ids)
        doc.transform_rows(rows, doc.gaussians.means[rows].astype(np.float64).mean(0), scale=factor)
    elif op == "recolor":
        try:
            doc.recolor(ids, parse_color(vals[1]))
        except ValueError as e:
            raise InputError(f"--recolor: {e}") from None
    elif op == "duplicate":
        doc.duplicate(ids)
    elif op == "merge":
        doc.merge(ids)
    elif op == "split":
        radius = _floats(vals[1], 1, "--split radius")[0] if len(vals) > 1 else None
        if radius is not None and radius <= 0:
            raise InputError(f"--split {vals[0]} {vals[1]}: the radius must be positive")
        doc.split(ids[0], radius)
    elif op == "rename":
        doc.rename(ids[0], vals[1])
    if len(selected) != len(doc):  # a duplicate appended rows: they start unselected
        selected = np.concatenate([selected, np.zeros(len(doc) - len(selected), bool)])
    return selected


def _check_outputs(args, src: Path) -> None:
    """Refuse --out (and --save-project) over the input, its run's results or its scene's inputs."""
    from coseg.io.safety import check_output, inputs_of

    protected = inputs_of(args.input, src)
    check_output(args.out, protected, "--out", kind="file")
    if getattr(args, "save_project", None):
        check_output(args.save_project, protected, "--save-project", kind="file")


def run_edit(args) -> int:
    from coseg.edit import export_gaussians

    doc, src = _open_document(args.input)
    _check_outputs(args, src)
    if not args.ops and not str(args.input).endswith(".cosegproj"):
        raise InputError("no edit given (use --delete, --move, --select with --assign, ...; see --help)")
    selected = np.zeros(len(doc), bool)
    for op, vals in args.ops or []:
        selected = _apply(doc, op, vals, selected, set(doc.segment_ids().tolist()))
    out = export_gaussians(doc.result(), args.out, args.format, inputs=(args.input, src), force=args.force)
    if args.save_project:
        from coseg.edit import load_gaussians
        from coseg.edit.project import StudioProject, model_fingerprint, save_project

        names = {str(k): v for k, v in doc.names.items()}
        save_project(args.save_project, StudioProject(src.resolve(), doc.ops, {"names": names},
                                                      model_fingerprint(load_gaussians(src))))
    print(f"wrote {out}: {int((~doc.deleted).sum())} Gaussians after {len(doc.ops)} edits")
    return 0


def run_export(args) -> int:
    from coseg.edit import export_gaussians, load_gaussians
    from coseg.edit.io import resolve_gaussians_path

    src = resolve_gaussians_path(args.input)
    _check_outputs(args, src)
    g = load_gaussians(src)
    if args.segments:
        if g.segments is None:
            raise InputError(f"{src}: has no 'segment' property, cannot select --segments")
        keep = np.isin(g.segments, args.segments)
        if not keep.any():
            raise InputError(f"{src}: none of the segments {args.segments} exist")
        g = g.subset(keep)
    out = export_gaussians(g, args.out, args.format, inputs=(args.input, src), force=args.force)
    print(f"wrote {out}: {len(g)} Gaussians")
    return 0
