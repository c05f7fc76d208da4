"""CPU time of a CoSeg training step and the size of its rendering matrices, per `blend_tolerance`.

Usage:
    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/segment_step.py RUN \
        [--tolerances 0,0.01] [--views 6] [--reps 5]

Prepares the CoSeg field of a built run once (features, unprojection, the
frozen spatial encoding, the decoder), then builds the per-view batches of
the first --views labelled training views for every tolerance and times
`train_step` forward + backward on them, interleaved (each repeat visits every
tolerance in turn), so the rows are measured side by side in one process.
Prints one row per tolerance: pairs per labelled pixel, rendering-matrix MB
per view (and for all labelled views, extrapolated), level-1 points decoded
per step, and the median CPU ms of a step. A second table times the step's
rendering + softmax forward and backward both ways on the same views
(interleaved): `apply` then `torch.softmax` (the step before the fused
kernel) against `render_softmax`. Training views only; nothing is scored.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import numpy as np


def main() -> None:
    from coseg.segment.config import SegmentConfig
    from coseg.segment.fields import StageInputs, field_class
    from coseg.segment.prepare import label_index_maps
    from coseg.segment.sources import training_labels
    from coseg.segment.stage import _load_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--tolerances", default="0,0.01")
    parser.add_argument("--views", type=int, default=6)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    tolerances = [float(t) for t in args.tolerances.split(",")]

    config = SegmentConfig()
    run, scene, gaussians = _load_run(args.run)
    source = training_labels(run.path, scene, gaussians, scene.train_cameras, config)
    field = field_class("coseg")(config.field_config, StageInputs(
        run=run, scene=scene, gaussians=gaussians, seed=0, attendance_tau=config.attendance_tau, labels=source))
    c0 = time.process_time()
    for _ in field.prepare():
        pass
    print(f"prepared {args.run} in {time.process_time() - c0:.1f} CPU s: {len(field.kept)} kept Gaussians, "
          f"{len(field.batches)} labelled views")
    maps = label_index_maps(scene, field.cams, field.labels, field.inputs.labels)
    views = list(field.labels.labelled)[:args.views]
    base = field.config
    batches = {}
    for tol in tolerances:
        field.config = dataclasses.replace(base, blend_tolerance=tol)
        batches[tol] = [field._view_batch(i, maps[i]) for i in views]
    field.config = base
    times = {tol: [] for tol in tolerances}
    for _ in range(args.reps + 1):  # the first round warms up (numba, allocator)
        for tol in tolerances:
            field.batches = batches[tol]
            for j in range(len(views)):
                c = time.process_time()
                loss, _ = field.train_step(j)
                loss.backward()
                times[tol].append(time.process_time() - c)
    print(f"| blend_tolerance | pairs per labelled pixel | matrix MB per view | all {len(field.labels.labelled)} "
          "views MB | level-1 points per step | CPU ms per step (median) |")
    print("|---|---|---|---|---|---|")
    for tol in tolerances:
        bs = batches[tol]
        pairs = np.mean([b.render.nnz / b.render.n_rows for b in bs])
        mb = np.mean([b.render.nbytes for b in bs]) / 2**20
        points = np.mean([len(b.plan.sets[0]) for b in bs])
        step = 1000 * statistics.median(times[tol][len(views):])
        print(f"| {tol:g} | {pairs:.1f} | {mb:.1f} | {mb * len(field.labels.labelled):.0f} | {points:,.0f} | "
              f"{step:.0f} |")
    render_table(field, batches[tolerances[-1]], args.reps)


def render_table(field, batches, reps: int) -> None:
    """CPU ms of rendering + softmax, forward and backward, unfused vs fused, on the same logits."""
    import torch

    from coseg.segment.sparse import apply, render_softmax

    ways = {"apply + torch.softmax": lambda m, x: torch.softmax(apply(m, x), dim=-1), "render_softmax": render_softmax}
    logits = []
    with torch.no_grad():
        for b in batches:
            logits.append(field.decoder(field.fusion.take(b.plan))["logits"])
    times = {name: [] for name in ways}
    for _ in range(reps + 1):
        for name, way in ways.items():
            for b, x in zip(batches, logits):
                x = x.clone().requires_grad_(True)
                c = time.process_time()
                probs = way(b.render, x)
                probs[torch.arange(len(b.labels)), b.labels].sum().backward()  # the losses read p(label)
                times[name].append(time.process_time() - c)
    print()
    print("| rendering + softmax, forward + backward | CPU ms per view (median) |")
    print("|---|---|")
    for name in ways:
        print(f"| {name} | {1000 * statistics.median(times[name][len(batches):]):.1f} |")


if __name__ == "__main__":
    main()
