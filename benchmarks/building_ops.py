"""The building step's non-raster ops, fused against their plain-PyTorch twins.

Usage:
    python benchmarks/building_ops.py [--size 320x240] [--gaussians 60000] [--runs 15]

Rows: SSIM forward+backward (numba `losses.ssim` vs torch `losses._ssim`), the
photometric loss forward+backward as the trainer calls it (L1 + D-SSIM), SH
colours forward+backward at degrees 0 and 3 (numba `sh_colors` on the DC and
higher-band tensors vs the concatenation + torch `eval_sh_colors` the trainer
used before), and one Adam step over Gaussian parameter arrays of the building
stage's shapes (`FusedAdam` vs `torch.optim.Adam(foreach=False)`, as the
trainer used before; at SH degree 0 the fused step also skips the bands that
get no gradient yet).
Each row runs the two variants alternately (A, B, A, B, ...) after one warm-up
each, so both see the same machine load; the table shows the median wall time
and the median process CPU time (all threads) of each, and their ratio.
torch runs with one thread as in training; numba with NUMBA_NUM_THREADS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import coseg  # noqa: E402,F401  (sets the OpenMP wait policy before torch loads)
import torch  # noqa: E402

from coseg.building import losses  # noqa: E402
from coseg.building.fused_adam import FusedAdam  # noqa: E402


def _time(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def alternate(a, b, runs: int) -> dict:
    """Median wall / CPU ms of a() and b(), run alternately after one warm-up each."""
    a()
    b()
    res = {"a": [], "b": []}
    for _ in range(runs):
        res["a"].append(_time(a))
        res["b"].append(_time(b))
    out = {}
    for k, v in res.items():
        out[k + "_wall"] = 1000 * statistics.median(x[0] for x in v)
        out[k + "_cpu"] = 1000 * statistics.median(x[1] for x in v)
    return out


def ssim_case(width: int, height: int, loss: bool):
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(height, width, 3, generator=gen)
    img = (ref + 0.1 * torch.randn(height, width, 3, generator=gen)).clamp(0, 1)

    def run(fn):
        def go():
            x = img.clone().requires_grad_()
            if loss:
                l1 = (x - ref).abs().mean()
                value = 0.8 * l1 + 0.2 * (1.0 - fn(x, ref))
            else:
                value = fn(x, ref)
            value.backward()
        return go

    return run(losses._ssim), run(losses.ssim)


def sh_case(n: int, degree: int):
    from coseg.render._cpu_sh import sh_colors
    from coseg.render._sh import eval_sh_colors

    gen = torch.Generator().manual_seed(0)
    means = torch.randn(n, 3, generator=gen).requires_grad_()
    sh0 = torch.randn(n, 1, 3, generator=gen).requires_grad_()
    rest = (0.1 * torch.randn(n, 15, 3, generator=gen)).requires_grad_()
    center = torch.tensor([0.1, 0.2, 5.0])
    up = torch.randn(n, 3, generator=gen)

    def run(fused):
        def go():
            if fused:
                colors = sh_colors(degree, sh0, rest, means, center)
            else:
                colors = eval_sh_colors(degree, torch.cat([sh0, rest], dim=1), means, center)
            (colors * up).sum().backward()
            for t in (means, sh0, rest):
                t.grad = None
        return go

    return run(False), run(True)


def adam_case(n: int, active_bands: int | None = None):
    shapes = {"means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,),
              "sh0": (n, 1, 3), "shN": (n, 15, 3)}
    lrs = {"means": 1.6e-4, "quats": 1e-3, "scales": 5e-3, "opacities": 0.05, "sh0": 2.5e-3, "shN": 1.25e-4}

    def make(cls, **kw):
        gen = torch.Generator().manual_seed(0)
        params = {k: torch.nn.Parameter(torch.randn(s, generator=gen)) for k, s in shapes.items()}
        grads = {k: torch.randn(s, generator=gen) for k, s in shapes.items()}
        groups = [{"params": [params[k]], "lr": lrs[k]} for k in shapes]
        if cls is FusedAdam and active_bands is not None:
            groups[-1]["active_dim1"] = active_bands  # shN: bands above the degree have no gradient
            grads["shN"][:, active_bands:] = 0.0
        opt = cls(groups, eps=1e-15, **kw)

        def go():
            for k, p in params.items():
                p.grad = grads[k]
            opt.step()
        return go

    return make(torch.optim.Adam, foreach=False), make(FusedAdam)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="320x240", help="image size WxH (320x240)")
    p.add_argument("--gaussians", type=int, default=60_000, help="Gaussians for the Adam row (60000)")
    p.add_argument("--runs", type=int, default=15, help="timed runs of each variant (15)")
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    torch.set_num_threads(1)
    rows = [
        (f"SSIM fwd+bwd {width}x{height}", "torch _ssim", "numba ssim", ssim_case(width, height, False)),
        (f"L1 + D-SSIM loss fwd+bwd {width}x{height}", "torch", "fused SSIM", ssim_case(width, height, True)),
        (f"SH colours fwd+bwd, degree 0, {args.gaussians}", "cat + torch", "numba", sh_case(args.gaussians, 0)),
        (f"SH colours fwd+bwd, degree 3, {args.gaussians}", "cat + torch", "numba", sh_case(args.gaussians, 3)),
        (f"Adam step, {args.gaussians} Gaussians x 59", "torch Adam", "FusedAdam", adam_case(args.gaussians)),
        (f"Adam step at SH degree 0, {args.gaussians} x 59", "torch Adam", "FusedAdam, bands skipped",
         adam_case(args.gaussians, active_bands=0)),
    ]
    print(f"load average before: {os.getloadavg()[0]:.2f}; numba threads "
          f"{os.environ.get('NUMBA_NUM_THREADS', 'default')}, torch threads 1, {args.runs} runs, ms")
    print("| op | A | B | A wall | B wall | A CPU | B CPU | CPU ratio A/B |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for name, a_name, b_name, (a, b) in rows:
        r = alternate(a, b, args.runs)
        print(f"| {name} | {a_name} | {b_name} | {r['a_wall']:.2f} | {r['b_wall']:.2f} | "
              f"{r['a_cpu']:.2f} | {r['b_cpu']:.2f} | {r['a_cpu'] / max(r['b_cpu'], 1e-9):.2f} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
