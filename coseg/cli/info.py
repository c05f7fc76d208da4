"""`coseg info PATH`: a short summary of a scene folder, run folder or PLY."""

from __future__ import annotations

import json
from pathlib import Path

from coseg.cli.scene_options import add_scene_options, settings_from_args
from coseg.errors import CosegError, InputError


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="summarise a scene folder, run folder or 3DGS .ply",
                       description="Print format, views per split, camera models and undistortion, "
                                   "working resolution, missing images, classes, Gaussian count and "
                                   "SH degree of PATH.")
    p.add_argument("path", type=Path, help="scene folder, run folder or Gaussian file (.ply, compressed .ply, .spz, .splat)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_scene_options(p, cache=False)
    p.set_defaults(func=run)


def summarize(path: Path, settings=None) -> dict:
    """Summary dict of a scene folder, run folder or Gaussian file.

    Args:
        path: what to summarise.
        settings: `coseg.scene_settings.ReadSettings` for a scene folder (default settings if None).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file():
        return _summarize_gaussians(path)
    if (path / "config.json").exists() and ((path / "gaussians.ply").exists() or
                                             (path / "checkpoints").exists()):
        return _summarize_run(path)
    return _summarize_scene(path, settings)


def _summarize_gaussians(path: Path) -> dict:
    from coseg.io.formats import read_gaussian_file

    g, kind = read_gaussian_file(path, keep_nonfinite=True)
    bad = int((~g.finite_mask()).sum())
    out = {"path": str(path), "kind": kind, "gaussians": len(g), "sh_degree": g.sh_degree,
           "nonfinite_gaussians": bad}
    if bad:
        out["note"] = f"{bad} Gaussians have NaN or inf parameters; every reader drops them"
        g = g.subset(g.finite_mask())
    if g.segments is not None:
        import numpy as np

        ids, counts = np.unique(g.segments, return_counts=True)
        out["segments"] = {int(i): int(c) for i, c in zip(ids, counts)}
    if g.extra:
        out["extra_properties"] = list(g.extra)
    return out


def _summarize_run(path: Path) -> dict:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path / 'config.json'}: unreadable ({e})") from e
    out: dict = {"path": str(path), "kind": "run", "scene": config.get("scene"),
                 "format_version": config.get("format_version")}
    for name in ("segmented.ply", "gaussians.ply"):
        if (path / name).exists():
            g = _summarize_gaussians(path / name)
            out[name] = {k: g[k] for k in ("gaussians", "sh_degree", "nonfinite_gaussians") if k in g}
            if "segments" in g:
                out[name]["segments"] = len(g["segments"])
    metrics = path / "metrics.json"
    if metrics.exists():
        try:
            out["metrics"] = json.loads(metrics.read_text())
        except json.JSONDecodeError:
            out["metrics"] = "unreadable"
    ckpts = sorted((path / "checkpoints").glob("*")) if (path / "checkpoints").exists() else []
    out["checkpoints"] = [p.name for p in ckpts]
    return out


def _summarize_scene(path: Path, settings=None) -> dict:
    from coseg.readers import read_scene
    from coseg.scene_settings import describe_cameras

    scene = read_scene(path, settings=settings)
    splits = {}
    for cam in scene.cameras:
        splits[cam.split] = splits.get(cam.split, 0) + 1
    sizes = sorted({(c.width, c.height) for c in scene.cameras})
    missing = [str(p.relative_to(path)) if p.is_relative_to(path) else str(p) for p in scene.missing_images]
    return {
        "path": str(path), "kind": "scene", "format": scene.format,
        "views": splits,
        "cameras": {f"camera {i + 1}": c for i, c in enumerate(describe_cameras(scene))},
        "resolution": [f"{w}x{h}" for w, h in sizes],
        "downscale": round(scene.downscale, 4),
        "missing images": (f"{len(missing)} (skipped): {', '.join(missing)}" if missing else 0),
        "classes": {int(k): v for k, v in scene.classes.items()},
        "labels": sum(c.label_path is not None for c in scene.cameras),
        "gt": sum(c.gt_path is not None for c in scene.cameras),
        "depth": sum(c.depth_path is not None for c in scene.cameras),
        "points": 0 if scene.points_xyz is None else int(len(scene.points_xyz)),
    }


def _print(summary: dict, indent: int = 0) -> None:
    pad = " " * indent
    for k, v in summary.items():
        if isinstance(v, dict) and v and len(v) > 12:
            print(f"{pad}{k}: {len(v)} entries")
        elif isinstance(v, dict):
            print(f"{pad}{k}:")
            _print(v, indent + 2)
        else:
            print(f"{pad}{k}: {v}")


def run(args) -> int:
    try:
        summary = summarize(args.path, settings_from_args(args))
    except (KeyError, ValueError) as e:
        if isinstance(e, CosegError):
            raise
        raise InputError(f"{args.path}: {e}") from e
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        _print(summary)
    return 0
