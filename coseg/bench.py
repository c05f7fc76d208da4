"""Render-engine benchmark behind `coseg bench` (workloads, timing, the table).

Workload (seeded, documented in docs/benchmarks.md): a camera at the origin
looking down +z with fx = fy = W, principal point at the image centre; N
Gaussians with means uniform in the box [-1.5, 1.5] x [-1.5, 1.5] x [2, 6],
log-scales ~ N(log 0.02, 0.5), quaternions with N(0, 1) components, opacities
U(0.1, 0.9) and channels U(0, 1) (C = 3 for "RGB", C = 64 for features). The
unprojection rows lift one random [H, W, C] feature map.

Each case is timed as: `warmup` untimed passes, then `runs` timed passes, each
pass = forward with gradients enabled, then backward of a fixed random linear
loss on image and alpha; forward, backward and their sum are medians over the
runs. Unprojection is timed separately the same way.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from coseg.errors import InputError

logger = logging.getLogger(__name__)

CHANNELS = (3, 64)
TARGETS_MS = {"rgb_fwd_bwd": 80.0, "c64_fwd_bwd": 160.0}
TARGET_SPEEDUP = 20.0


@dataclass(frozen=True)
class Workload:
    """One benchmark input: Gaussians seen by a camera."""

    name: str
    """Shown in the table ("random" or the run folder)."""
    width: int
    height: int
    n_gaussians: int
    seed: int = 0


STANDARD = (Workload("random", 256, 256, 50_000), Workload("random", 320, 240, 100_000))
REFERENCE = Workload("random", 48, 48, 1_000)
QUICK = (Workload("random", 32, 24, 400),)
QUICK_REFERENCE = Workload("random", 16, 16, 60)


def random_inputs(w: Workload) -> dict:
    """The seeded random workload (module docstring): geometry tensors and a camera."""
    g = torch.Generator().manual_seed(w.seed)
    n = w.n_gaussians
    lo = torch.tensor([-1.5, -1.5, 2.0])
    hi = torch.tensor([1.5, 1.5, 6.0])
    means = lo + (hi - lo) * torch.rand(n, 3, generator=g)
    K = torch.tensor([[w.width, 0.0, w.width / 2], [0.0, w.width, w.height / 2], [0.0, 0.0, 1.0]])
    return {
        "means": means,
        "quats": torch.randn(n, 4, generator=g),
        "scales": torch.exp(math.log(0.02) + 0.5 * torch.randn(n, 3, generator=g)),
        "opacities": 0.1 + 0.8 * torch.rand(n, generator=g),
        "viewmat": torch.eye(4), "K": K, "sh_degree": None,
    }


def run_inputs(run_dir: Path) -> tuple[Workload, dict]:
    """A trained run's Gaussians (RUN/gaussians.ply) and its first test camera."""
    from coseg.io.ply import read_gaussians_ply
    from coseg.readers import read_run_scene
    from coseg.render import camera_tensors, gaussian_tensors
    from coseg.run import RunDir

    run = RunDir.open(run_dir)
    if not (run.read_config().get("scene") or {}).get("path"):
        raise InputError(f"{run.config_path}: records no scene, so there is no camera to render")
    scene = read_run_scene(run)
    cam = (scene.test_cameras or scene.cameras)[0]
    gaussians = read_gaussians_ply(run.gaussians_path)
    t = gaussian_tensors(gaussians)
    viewmat, K = camera_tensors(cam)
    inputs = {"means": t["means"], "quats": t["quats"], "scales": t["scales"],
              "opacities": t["opacities"], "viewmat": viewmat, "K": K, "sh": t["sh"],
              "sh_degree": gaussians.sh_degree}
    return Workload(f"run {Path(run_dir).name} ({cam.name})", cam.width, cam.height, len(gaussians)), inputs


def _channels(inputs: dict, n_ch: int, seed: int) -> tuple[torch.Tensor, int | None]:
    """Per-Gaussian inputs for C channels: the run's SH for RGB when present, else U(0, 1)."""
    if n_ch == 3 and inputs.get("sh") is not None:
        return inputs["sh"], inputs["sh_degree"]
    g = torch.Generator().manual_seed(seed + n_ch)
    return torch.rand(inputs["means"].shape[0], n_ch, generator=g), None


def _median_ms(samples: list[float]) -> float:
    return 1000.0 * statistics.median(samples)


def time_case(render: Callable, unproject: Callable, inputs: dict, w: Workload, n_ch: int,
              runs: int, warmup: int) -> dict:
    """Median wall times of forward, backward, forward+backward and unprojection, in ms.

    Also the process CPU times (all threads) of forward, forward+backward and
    unprojection: on a shared machine the wall time includes waiting for a core,
    the CPU time does not, so the unprojection-vs-forward comparison can be read
    from them too.
    """
    colors, sh_degree = _channels(inputs, n_ch, w.seed)
    params = [inputs[k].detach().clone().requires_grad_(True)
              for k in ("means", "quats", "scales", "opacities")] + [colors.clone().requires_grad_(True)]
    g = torch.Generator().manual_seed(w.seed + 1)
    up_img = torch.randn(w.height, w.width, n_ch, generator=g)
    up_alpha = torch.randn(w.height, w.width, 1, generator=g)
    fwd, bwd, cpu, fwd_cpu = [], [], [], []
    for k in range(warmup + runs):
        c0, t0 = time.process_time(), time.perf_counter()
        img, alpha, _ = render(*params, inputs["viewmat"], inputs["K"], w.width, w.height,
                               sh_degree=sh_degree)
        t1, c1 = time.perf_counter(), time.process_time()
        ((img * up_img.to(img.dtype)).sum() + (alpha * up_alpha.to(alpha.dtype)).sum()).backward()
        t2, c2 = time.perf_counter(), time.process_time()
        for p in params:
            p.grad = None
        if k >= warmup:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            cpu.append(c2 - c0)
            fwd_cpu.append(c1 - c0)
    fmap = np.random.default_rng(w.seed + 2).random((w.height, w.width, n_ch), dtype=np.float32)
    geometry = [inputs[k].detach() for k in ("means", "quats", "scales", "opacities")]
    unp, unp_cpu = [], []
    for k in range(warmup + runs):
        c0, t0 = time.process_time(), time.perf_counter()
        unproject(*geometry, inputs["viewmat"][None], inputs["K"][None], w.width, w.height, [fmap])
        if k >= warmup:
            unp.append(time.perf_counter() - t0)
            unp_cpu.append(time.process_time() - c0)
    return {"forward_ms": _median_ms(fwd), "backward_ms": _median_ms(bwd),
            "forward_backward_ms": _median_ms([a + b for a, b in zip(fwd, bwd)]),
            "unproject_ms": _median_ms(unp), "forward_backward_cpu_ms": _median_ms(cpu),
            "forward_cpu_ms": _median_ms(fwd_cpu), "unproject_cpu_ms": _median_ms(unp_cpu)}


def _backends() -> dict[str, tuple[Callable, Callable]]:
    from coseg.render import rasterization, unproject_features
    from coseg.render._reference import _rasterization, _unproject_features

    def cpu(*args, **kw):
        return rasterization(*args, backend="cpu", **kw)

    return {"cpu": (cpu, unproject_features), "reference": (_rasterization, _unproject_features)}


def machine_info() -> dict:
    """CPU model, cores, thread counts and load: the context every figure needs."""
    import numba

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpu": model, "cores": os.cpu_count(), "numba_threads": numba.get_num_threads(),
            "torch_threads": torch.get_num_threads(), "load_avg_1min": round(load[0], 2),
            "python": platform.python_version(), "torch": torch.__version__, "numba": numba.__version__}


def run_bench(*, quick: bool = False, run_dir: Path | None = None, runs: int = 5,
              warmup: int = 1) -> dict:
    """Time the CPU backend on the standard workloads, a run's view and against the reference.

    Args:
        quick: tiny workloads and 1 run (a smoke test of the benchmark, not figures).
        run_dir: optional trained run folder; adds rows for its Gaussians and first test camera.
        runs, warmup: timed and untimed passes per case (quick mode uses 1 and 1).

    Returns:
        {"machine": ..., "settings": ..., "rows": [...], "notes": [...], "targets": [...]}; each
        row holds backend, workload fields, channels and the four median times in ms.
    """
    if quick:
        runs, warmup = 1, 1
    run_case = run_inputs(Path(run_dir)) if run_dir is not None else None
    backends = _backends()
    rows, notes = [], []

    def add(backend: str, w: Workload, inputs: dict) -> None:
        for n_ch in CHANNELS:
            logger.info("bench %s %s %dx%d N=%d C=%d", backend, w.name, w.width, w.height,
                        w.n_gaussians, n_ch)
            times = time_case(*backends[backend], inputs, w, n_ch, runs, warmup)
            rows.append({"backend": backend, **asdict(w), "channels": n_ch, **times})

    for w in QUICK if quick else STANDARD:
        add("cpu", w, random_inputs(w))
    if run_case is not None:
        add("cpu", *run_case)
    else:
        notes.append("no --run RUN given: no rows for a trained scene")
    ref_w = QUICK_REFERENCE if quick else REFERENCE
    ref_inputs = random_inputs(ref_w)
    add("reference", ref_w, ref_inputs)
    add("cpu", ref_w, ref_inputs)
    return {"machine": machine_info(), "settings": {"runs": runs, "warmup": warmup, "quick": quick},
            "rows": rows, "speedups": _speedups(rows, ref_w), "targets": _targets(rows, quick),
            "notes": notes}


def _find(rows: list[dict], backend: str, w: Workload, n_ch: int) -> dict | None:
    for r in rows:
        if (r["backend"], r["width"], r["height"], r["n_gaussians"], r["channels"], r["name"]) == \
                (backend, w.width, w.height, w.n_gaussians, n_ch, w.name):
            return r
    return None


def _speedups(rows: list[dict], w: Workload) -> list[dict]:
    """reference time / cpu time per column on the shared reference workload."""
    out = []
    for n_ch in CHANNELS:
        ref, cpu = _find(rows, "reference", w, n_ch), _find(rows, "cpu", w, n_ch)
        out.append({"channels": n_ch, **{k: ref[k] / cpu[k] for k in ref
                                          if k.endswith("_ms") and "cpu" not in k}})
    return out


def _targets(rows: list[dict], quick: bool) -> list[dict]:
    """The issue's targets, checked on the 256x256 / 50k workload (not in quick mode)."""
    if quick:
        return []
    w = STANDARD[0]
    rgb, c64 = _find(rows, "cpu", w, 3), _find(rows, "cpu", w, 64)
    return [
        {"target": "RGB fwd+bwd 256x256 50k <= 80 ms", "measured_ms": rgb["forward_backward_ms"],
         "met": rgb["forward_backward_ms"] <= TARGETS_MS["rgb_fwd_bwd"]},
        {"target": "C=64 fwd+bwd 256x256 50k <= 160 ms", "measured_ms": c64["forward_backward_ms"],
         "met": c64["forward_backward_ms"] <= TARGETS_MS["c64_fwd_bwd"]},
        {"target": "unprojection(64) <= forward(64), 256x256 50k", "measured_ms": c64["unproject_ms"],
         "met": c64["unproject_ms"] <= c64["forward_ms"]},
    ]


def format_table(results: dict) -> str:
    """The human-readable report: machine line, timing table, speed-ups, targets, notes."""
    m = results["machine"]
    lines = ["fwd / f+b / unp CPU = process CPU time of forward, forward+backward, unprojection "
             "summed over threads (wall time also counts waiting for a core on a shared machine)",
             f"CPU: {m['cpu']} ({m['cores']} cores), numba threads {m['numba_threads']}, "
             f"torch threads {m['torch_threads']}, load {m['load_avg_1min']}; "
             f"median of {results['settings']['runs']} runs after {results['settings']['warmup']} warm-up",
             "",
             f"{'backend':<10} {'workload':<28} {'size':>9} {'N':>7} {'C':>3} "
             f"{'forward':>9} {'backward':>9} {'fwd+bwd':>9} {'unproject':>9} {'fwd CPU':>9} "
             f"{'f+b CPU':>9} {'unp CPU':>9}  (ms)"]
    for r in results["rows"]:
        lines.append(f"{r['backend']:<10} {r['name'][:28]:<28} {r['width']:>4}x{r['height']:<4} "
                     f"{r['n_gaussians']:>7} {r['channels']:>3} {r['forward_ms']:>9.1f} "
                     f"{r['backward_ms']:>9.1f} {r['forward_backward_ms']:>9.1f} {r['unproject_ms']:>9.1f} "
                     f"{r['forward_cpu_ms']:>9.1f} {r['forward_backward_cpu_ms']:>9.1f} "
                     f"{r['unproject_cpu_ms']:>9.1f}")
    lines.append("")
    for s in results["speedups"]:
        lines.append(f"speed-up cpu vs reference, C={s['channels']:<3}: forward {s['forward_ms']:.0f}x, "
                     f"backward {s['backward_ms']:.0f}x, fwd+bwd {s['forward_backward_ms']:.0f}x, "
                     f"unproject {s['unproject_ms']:.0f}x (target >= {TARGET_SPEEDUP:.0f}x)")
    for t in results["targets"]:
        lines.append(f"target {t['target']}: {t['measured_ms']:.1f} ms -> {'met' if t['met'] else 'MISSED'}")
    lines.extend(f"note: {n}" for n in results["notes"])
    return "\n".join(lines)
