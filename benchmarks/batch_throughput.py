"""Scenes per hour of `coseg batch`: local Ray against the sequential fallback, side by side.

Usage:
    python benchmarks/batch_throughput.py --out DIR [--scenes 3] [--size 320x240]
        [--run-options "--iterations 3000 --seg-iterations 6000"]

Generates --scenes demo scenes (`coseg synth`, seeds 0..N-1, at --size), then
runs the same batch twice into fresh folders: ``--ray off`` (one scene after
another) and ``--ray local`` (the default: as many stage tasks at once as
this machine has CPUs, one numba thread each). Prints a table of wall time,
scenes per hour, the mean test PSNR / mIoU and the largest peak memory. The defaults of
`coseg run` are the full demo budget (about 40 minutes per scene on 2
cores); pass a smaller --run-options budget for a quick comparison and say
so beside the figures.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--run-options", default="")
    args = parser.parse_args()
    scenes = []
    for seed in range(args.scenes):
        path = args.out / "scenes" / f"demo{seed}"
        if not (path / "transforms_train.json").exists():
            subprocess.run([sys.executable, "-m", "coseg", "-q", "synth", str(path), "--seed", str(seed),
                            "--size", args.size], check=True)
        scenes.append(str(path))
    rows = []
    for mode in ("off", "local"):
        out = args.out / f"runs-{mode}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "coseg", "batch", *scenes, "--out", str(out), "--ray", mode,
               "--run-options", args.run_options]
        t0 = time.perf_counter()
        rc = subprocess.run(cmd).returncode
        wall = time.perf_counter() - t0
        rows.append((mode, rc, wall, _table(out / "results.csv")))
    print(f"\n{args.scenes} demo scenes at {args.size}, coseg run options: {shlex.join(shlex.split(args.run_options)) or '(defaults)'}")
    print("| mode | exit | wall | scenes per hour | mean PSNR | mean mIoU | largest peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for mode, rc, wall, mean in rows:
        print(f"| --ray {mode} | {rc} | {wall / 60:.1f} min | {3600 * args.scenes / wall:.2f} | "
              f"{mean.get('psnr', '')} | {mean.get('miou', '')} | {mean.get('peak_rss_mb', '')} MB |")
    print(f"ratio sequential / Ray wall: {rows[0][2] / rows[1][2]:.2f}")


def _table(path: Path) -> dict:
    from coseg.batch.results import read_rows

    rows = read_rows(path)
    mean = next((r for r in rows if r["scene"] == "mean"), {})
    peaks = [float(r["peak_rss_mb"]) for r in rows if r["scene"] != "mean" and r.get("peak_rss_mb")]
    return {**mean, "peak_rss_mb": f"{max(peaks):.0f}" if peaks else ""}


if __name__ == "__main__":
    main()
