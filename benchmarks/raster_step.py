"""CPU rasteriser forward + backward: an older revision's kernels against this tree's, side by side.

Usage:
    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/raster_step.py \
        [--old-rev main] [--runs 9] [--warmup 2] [--channels 3]

The older revision's `coseg/render` kernels and autograd wrappers (`git show
REV:...`) are copied to a scratch package outside the repository (under the
system temp folder, one per commit, so numba's disk cache is reused) and
imported next to this tree's `coseg`. Each workload of `coseg bench` (the
seeded random scenes, 256x256 / 50k and 320x240 / 100k) is rendered through
both versions' `rasterize_view` in turn, forward with gradients enabled, then
the backward of a fixed random linear loss on image and alpha; the two
versions alternate run by run, so machine load hits both alike. Prints, per
workload and version, the median wall and process-CPU ms of forward, backward
and their sum, and the largest difference of image and gradients between the
versions.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
#: The kernel modules copied from the older revision (everything `_autograd` imports).
KERNELS = ("_autograd", "_cpu_binning", "_cpu_pixels", "_cpu_project", "_cpu_raster", "_cpu_raster_bwd")


def old_autograd(rev: str):
    """The `_autograd` module of revision `rev`, imported from a scratch copy of its kernels."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", rev], check=True,
                         capture_output=True, text=True).stdout.strip()
    package = f"raster_old_{sha}"
    root = Path(tempfile.gettempdir()) / "coseg-raster-step"
    folder = root / package
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").touch()
    for name in KERNELS:
        text = subprocess.run(["git", "-C", str(REPO), "show", f"{sha}:coseg/render/{name}.py"], check=True,
                              capture_output=True, text=True).stdout
        text = text.replace("from coseg.render._", f"from {package}._")
        target = folder / f"{name}.py"
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
    sys.path.insert(0, str(root))
    return importlib.import_module(f"{package}._autograd")


def step(rasterize_view, inputs: dict, colors: torch.Tensor, upstream, width: int, height: int):
    """One forward + backward; returns (times, image, gradients)."""
    params = [inputs[k].clone().requires_grad_(True) for k in ("means", "quats", "scales", "opacities")]
    params.append(colors.clone().requires_grad_(True))
    means, quats, scales, opacities, cols = params
    c0, t0 = time.process_time(), time.perf_counter()
    img, alpha, _ = rasterize_view(means, quats, scales, opacities, cols, inputs["viewmat"], inputs["K"],
                                   width, height, torch.zeros(colors.shape[1]), 0.01)
    t1, c1 = time.perf_counter(), time.process_time()
    ((img * upstream[0]).sum() + (alpha * upstream[1]).sum()).backward()
    t2, c2 = time.perf_counter(), time.process_time()
    return (t1 - t0, t2 - t1, c1 - c0, c2 - c1), img.detach(), [p.grad for p in params]


def main() -> None:
    from coseg.bench import STANDARD, random_inputs
    from coseg.render import _autograd as new

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-rev", default="main", help="git revision of the 'old' kernels")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--channels", type=int, default=3)
    args = parser.parse_args()
    versions = {"old": old_autograd(args.old_rev).rasterize_view, "new": new.rasterize_view}

    header = (f"{'workload':<16} {'version':<8} {'fwd':>7} {'bwd':>7} {'f+b':>7} {'fwd CPU':>8} "
              f"{'bwd CPU':>8} {'f+b CPU':>8} {'max |diff|':>11}")
    print(f"C = {args.channels}, old = {args.old_rev}, median of {args.runs} runs after {args.warmup} "
          "warm-up, times in ms")
    print(header)
    print("-" * len(header))
    for w in STANDARD:
        inputs = random_inputs(w)
        inputs["quats"] = inputs["quats"] / inputs["quats"].norm(dim=1, keepdim=True)
        g = torch.Generator().manual_seed(w.seed + 1)
        colors = torch.rand(w.n_gaussians, args.channels, generator=g)
        upstream = (torch.randn(w.height, w.width, args.channels, generator=g),
                    torch.randn(w.height, w.width, 1, generator=g))
        times = {name: [] for name in versions}
        results = {}
        for k in range(args.warmup + args.runs):
            for name, fn in versions.items():
                t, img, grads = step(fn, inputs, colors, upstream, w.width, w.height)
                results[name] = (img, grads)
                if k >= args.warmup:
                    times[name].append(t)
        diff = max(float((a - b).abs().max()) for a, b in zip(
            [results["old"][0], *results["old"][1]], [results["new"][0], *results["new"][1]]))
        for name, samples in times.items():
            fwd, bwd, fwd_cpu, bwd_cpu = (1000 * statistics.median(s[i] for s in samples) for i in range(4))
            fb = 1000 * statistics.median(s[0] + s[1] for s in samples)
            fb_cpu = 1000 * statistics.median(s[2] + s[3] for s in samples)
            print(f"{w.width}x{w.height}/{w.n_gaussians // 1000}k".ljust(16)
                  + f" {name:<8} {fwd:7.1f} {bwd:7.1f} {fb:7.1f} {fwd_cpu:8.1f} {bwd_cpu:8.1f} {fb_cpu:8.1f}"
                  + f" {diff:11.2e}")


if __name__ == "__main__":
    main()
