"""`coseg eval RUN`: image-quality and cost metrics of a run, merged into metrics.json."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from coseg.errors import InputError

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a run on its scene's test views",
        description="Render the test views and report PSNR, SSIM, Gaussian count, training time, "
                    "peak memory and rendering FPS; each stage's section of RUN/metrics.json is "
                    "updated (other sections are kept).")
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("--scene", type=Path, help="scene folder (default: the one recorded in config.json)")
    p.add_argument("--backend", default="auto", help="render backend: auto, cpu, gsplat, inria")
    p.set_defaults(func=run)


def load_run_scene(run_dir, scene_path: Path | None):
    """The scene of a run: `scene_path` or the path and downscale recorded in config.json."""
    from coseg.readers import read_scene

    header = run_dir.read_config().get("scene") or {}
    path = scene_path or header.get("path")
    if not path:
        raise InputError(f"{run_dir.config_path}: records no scene; pass --scene SCENE")
    return read_scene(Path(path), downscale=int(header.get("downscale", 1)))


def run(args) -> int:
    from coseg.building.evaluate import METRIC_SECTIONS, load_extensions
    from coseg.run import RunDir

    load_extensions()
    run_dir = RunDir.open(args.run)
    scene = load_run_scene(run_dir, args.scene)
    results: dict[str, dict[str, Any]] = {}
    for section, evaluate in METRIC_SECTIONS.items():
        values = evaluate(run_dir, scene, args.backend)
        if values is not None:
            run_dir.update_metrics(section, values)
            results[section] = values
    for section, values in results.items():
        print(f"[{section}]")
        for key, value in values.items():
            if key == "lpips" and value is None:
                print("  LPIPS: not available (no offline weights)")
            else:
                print(f"  {key:<20} {_fmt(value)}")
    return 0


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    if isinstance(value, dict):  # per-class figures: "id:value" pairs
        return " ".join(f"{k}:{_fmt(v)}" for k, v in value.items())
    return str(value)
