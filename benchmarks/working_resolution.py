"""Building speed against the working resolution: CPU seconds per step, side by side.

Usage:
    NUMBA_NUM_THREADS=1 python benchmarks/working_resolution.py SCENE --out DIR
        [--resolutions 360 540 800] [--steps 60] [--reference SCENE2]

For every longest side in --resolutions, SCENE is read at that working
resolution and the building stage (default settings, so the schedule is that
of the full default budget) runs --steps steps; the table gives the CPU and
wall seconds per step over steps 11..N (the first ten are left out: JIT and
warm-up). --reference adds a row for another scene at its own default
resolution (e.g. the demo room, whose full build time docs/benchmarks.md
gives), so a full build of SCENE can be estimated from the ratio. The
photos are undistorted and resized once before the timing (cache in DIR).
Take the figures with one thread per job: CPU time is what compares on a
shared machine.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path


def time_steps(scene, steps: int, run_path: Path) -> tuple[float, float, int]:
    """(CPU s/step, wall s/step, Gaussians at the end) over steps 11..steps."""
    from coseg.building import BuildConfig, train
    from coseg.run import RunDir

    shutil.rmtree(run_path, ignore_errors=True)
    gen = train(scene, BuildConfig(), RunDir.create(run_path, scene.root, reading=scene.reading))
    cpu0 = wall0 = None
    for rec in gen:
        if rec["iteration"] == 10:
            cpu0, wall0 = time.process_time(), time.perf_counter()
        if rec["iteration"] >= steps:
            break
    gen.close()
    n = steps - 10
    return (time.process_time() - cpu0) / n, (time.perf_counter() - wall0) / n, rec["num_gaussians"]


def main() -> None:
    from coseg.readers import read_scene
    from coseg.scene_settings import ReadSettings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scene", type=Path)
    p.add_argument("--out", type=Path, required=True, help="scratch folder (runs and pixel cache)")
    p.add_argument("--resolutions", type=int, nargs="+", default=[360, 540, 800])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--reference", type=Path, help="another scene, read at its default resolution")
    args = p.parse_args()
    if args.steps <= 10:
        p.error("--steps must exceed 10 (the first ten steps are not timed)")
    cases = [(f"{args.scene.name} @ {r} px", args.scene, ReadSettings(resolution=r)) for r in args.resolutions]
    if args.reference is not None:
        cases.insert(0, (f"{args.reference.name} (reference)", args.reference, ReadSettings()))
    print("| scene | working size | pixels | Gaussians at the end | CPU s/step | wall s/step |")
    print("|---|---|---|---|---|---|")
    for i, (name, path, settings) in enumerate(cases):
        scene = read_scene(path, settings=settings, cache=args.out / "cache")
        for cam in scene.train_cameras:
            scene.load_image(cam)  # undistort and resize outside the timing
        cam = scene.train_cameras[0]
        cpu, wall, n = time_steps(scene, args.steps, args.out / f"run{i}")
        print(f"| {name} | {cam.width}x{cam.height} | {cam.width * cam.height:,} | {n:,} | {cpu:.3f} | {wall:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
