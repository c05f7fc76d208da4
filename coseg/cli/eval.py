"""`coseg eval RUN`: image-quality and cost metrics of a run, merged into metrics.json."""

from __future__ import annotations

from pathlib import Path


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
    """The scene of a run: `scene_path` or the recorded one, read as config.json records."""
    from coseg.readers import read_run_scene

    return read_run_scene(run_dir, scene_path)


def run(args) -> int:
    from coseg.cli.drive import print_metrics
    from coseg.pipeline import evaluate_run
    from coseg.run import RunDir

    run_dir = RunDir.open(args.run)
    print_metrics(evaluate_run(run_dir, load_run_scene(run_dir, args.scene), args.backend))
    return 0
