"""`coseg bench`: time the render engine (forward, backward, unprojection) and print a table."""

from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="benchmark the render engine",
        description="Time forward, backward, forward+backward and feature unprojection of the CPU "
                    "render backend (median of --runs after warm-up) for RGB and C=64 on seeded "
                    "random workloads (256x256/50k and 320x240/100k Gaussians), optionally on a "
                    "trained run's Gaussians, and against the float64 PyTorch reference on a "
                    "small workload. See docs/benchmarks.md.")
    p.add_argument("--run", type=Path, metavar="RUN",
                   help="run folder: add rows for RUN/gaussians.ply seen from its first test camera")
    p.add_argument("--runs", type=int, default=5, help="timed runs per case (median; default 5)")
    p.add_argument("--quick", action="store_true",
                   help="tiny workloads, 1 run: checks the benchmark works, figures mean nothing")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from coseg.bench import format_table, run_bench
    from coseg.errors import InputError

    if args.runs < 1:
        raise InputError(f"--runs must be at least 1, got {args.runs}")
    results = run_bench(quick=args.quick, run_dir=args.run, runs=args.runs)
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0
