"""Time budgets: `coseg build --minutes M` picks the iterations and the Gaussian cap.

Procedure (the log and config.json's ``building.budget`` state every number):

1. *Probe.* After initialisation, `probe_step_cost` times a few optimisation
   steps on throwaway copies of the initial Gaussians, once with all N0 of
   them and once with a random quarter, on the real training views (one
   untimed warm-up each). The two timings give a per-step cost
   ``fixed_s + per_gaussian_s * N`` (`StepCost`).
2. *Plan.* `plan_budget` predicts the wall time of a run of I iterations with
   cap C from that cost and the count the densification schedule gives
   (`mean_count`: N0 until densification starts, then the cap, reached
   linearly over the first `GROWTH_SHARE` of the densification window, kept
   until the end), and chooses:
   - the cap: as kept (``budget_fixed``) or set, else the default (one
     Gaussian per ``pixels_per_gaussian`` training pixels);
   - the iterations: as kept, else as many as fit in the time left
     (budget minus time already spent minus `RESERVE`), within
     [`MIN_ITERATIONS`, `MAX_ITERATIONS`]; when even `MIN_ITERATIONS` do not
     fit at that cap and the cap is free, the cap is lowered until they do
     (not below N0), then the iterations are what fits; with the iterations
     kept, the cap is the largest that fits (at most the default).
   The densification schedule follows the iterations as without a budget
   (`BuildConfig.resolved`).

3. *Re-plan.* The model is a reduced one: the cost per Gaussian changes
   during training (low opacities early make steps slower, densified
   Gaussians are smaller, higher SH bands cost more), so the plan alone
   finished the demo room's 10-minute build in 6.9 minutes on an idle
   machine. `BudgetClock` corrects it from the run itself: once the count
   has reached the cap (or densification has ended), it measures the wall
   time of the iterations since then, the last `REPLAN_WINDOW_MAX` at most
   (at least `REPLAN_WINDOW`; everything the loop does:
   steps, densification, held-view PSNR, checkpoints) and sets the
   iterations to what fits in the budget left, again every `REPLAN_SHARE`
   of the run. Only the end moves: the densification schedule stays as
   first planned, and the means' learning-rate decay follows the new end.
   With the iterations kept (``budget_fixed``) nothing is re-planned.
   Prediction, re-plans and the actual total are recorded
   (``budget`` in config.json and metrics.json; figures in docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from coseg.building.config import BuildConfig
from coseg.building.optim import create_optimizer, set_active_sh_bands
from coseg.building.step import View, optimisation_step, training_background

log = logging.getLogger(__name__)

PROBE_STEPS = 4
"""Timed steps per probe size (after one untimed warm-up)."""
MIN_ITERATIONS = 1000
"""Fewest iterations a budget chooses when the cap can shrink instead."""
MAX_ITERATIONS = 30_000
"""Most iterations a budget chooses (the full 3DGS schedule)."""
RESERVE = 0.04
"""Share of the budget kept for checkpoints, held-view PSNR and writing the result."""
GROWTH_SHARE = 0.25
"""Share of the densification window over which the count is assumed to reach the cap."""
REPLAN_WINDOW = 100
"""Fewest iterations (at the cap) whose measured wall time a re-plan extrapolates."""
REPLAN_WINDOW_MAX = 500
"""Most: the last this many (one 100-iteration window swung by -25 % / +40 % on the open-sky scene)."""
REPLAN_SHARE = 0.1
"""A re-plan every this share of the planned iterations (once the count has reached the cap)."""


@dataclass
class StepCost:
    """Predicted wall seconds of one step: fixed_s + per_gaussian_s * N."""

    fixed_s: float
    per_gaussian_s: float

    def step_s(self, n: float) -> float:
        return self.fixed_s + self.per_gaussian_s * n


def probe_step_cost(params: dict[str, torch.Tensor], config: BuildConfig, views: list[View],
                    fixed_background: torch.Tensor) -> tuple[StepCost, dict[str, Any]]:
    """Time steps on copies of `params` with all and with a quarter of the Gaussians.

    Args:
        params: the initial parameters (not modified). config: resolved settings.
        views: training views (the first few are used). fixed_background: the scene's [3].

    Returns:
        (the fitted cost, a report with the measured seconds per step and counts).
    """
    n0 = int(params["means"].shape[0])
    rng = np.random.default_rng([config.seed, 0x9B0])
    quarter = torch.from_numpy(np.sort(rng.choice(n0, max(1, n0 // 4), replace=False)))
    rng_state = torch.get_rng_state()
    timings = {}
    for label, keep in (("all", None), ("quarter", quarter)):
        trial = {k: torch.nn.Parameter((v.detach() if keep is None else v.detach()[keep]).clone())
                 for k, v in params.items()}
        optimizer = create_optimizer(trial, config, 1.0)
        set_active_sh_bands(optimizer, 0)
        samples = []
        for step in range(PROBE_STEPS + 1):
            view = views[step % len(views)]
            t0 = time.perf_counter()
            optimisation_step(trial, optimizer, view, training_background(config, step + 1, fixed_background),
                              0, config, step + 1)
            samples.append(time.perf_counter() - t0)
        timings[label] = (int(trial["means"].shape[0]), float(np.median(samples[1:])))
    torch.set_rng_state(rng_state)
    (n_all, t_all), (n_q, t_q) = timings["all"], timings["quarter"]
    per = max((t_all - t_q) / max(n_all - n_q, 1), 0.0)
    cost = StepCost(fixed_s=max(t_all - per * n_all, 0.0), per_gaussian_s=per)
    report = {"probe_steps": PROBE_STEPS, "probe_step_s": {"all": t_all, "quarter": t_q},
              "probe_counts": {"all": n_all, "quarter": n_q}, "fixed_s": cost.fixed_s,
              "per_gaussian_us": 1e6 * cost.per_gaussian_s}
    return cost, report


def mean_count(n0: int, cap: int, config: BuildConfig) -> float:
    """Mean Gaussian count over the run of a resolved config (see the module docstring)."""
    total = config.iterations
    start = min(config.densify_start, total)
    stop = min(config.densify_stop, total)
    reach = min(start + GROWTH_SHARE * max(stop - start, 0), total)
    cap = max(cap, n0)
    area = n0 * start + 0.5 * (n0 + cap) * (reach - start) + cap * (total - reach)
    return area / max(total, 1)


def predicted_seconds(cost: StepCost, n0: int, config: BuildConfig) -> float:
    """Wall seconds of the training steps of a resolved config."""
    return config.iterations * cost.step_s(mean_count(n0, config.max_gaussians, config))


def plan_budget(config: BuildConfig, cost: StepCost, n0: int, spent_s: float,
                train_pixels: int) -> tuple[BuildConfig, dict[str, Any]]:
    """Choose iterations and cap (those not set in `config`) to fit ``config.minutes``.

    Args:
        config: the user's settings with minutes set; ``budget_fixed`` names the settings kept
            (a max_gaussians set without being kept is the upper end of the cap's range).
        cost: from `probe_step_cost`. n0: initial Gaussian count.
        spent_s: wall seconds of the build already spent (initialisation, probe).
        train_pixels: pixels of all training views.

    Returns:
        (the resolved config to train with, the plan's report).
    """
    budget_s = 60.0 * float(config.minutes)
    available = max(budget_s * (1.0 - RESERVE) - spent_s, 0.0)
    cap_fixed = "max_gaussians" in config.budget_fixed and config.max_gaussians is not None
    iterations_fixed = "iterations" in config.budget_fixed
    cap = (config.max_gaussians if config.max_gaussians is not None
           else config.default_max_gaussians(train_pixels, n0))

    def resolved(iterations: int, cap: int) -> BuildConfig:
        return dataclasses.replace(config, iterations=iterations, max_gaussians=cap).resolved(train_pixels,
                                                                                            initial=n0)

    def fitting_iterations(cap: int) -> int:
        per_step = predicted_seconds(cost, n0, resolved(1000, cap)) / 1000
        return int(available / max(per_step, 1e-9))

    if iterations_fixed:
        iterations = config.iterations
        if not cap_fixed:
            cap = _largest_cap(lambda c: predicted_seconds(cost, n0, resolved(iterations, c)) <= available,
                               n0, cap)
    else:
        iterations = fitting_iterations(cap)
        if iterations < MIN_ITERATIONS and not cap_fixed:
            cap = _largest_cap(lambda c: fitting_iterations(c) >= MIN_ITERATIONS, n0, cap)
            iterations = fitting_iterations(cap)
        iterations = int(min(max(iterations, 1), MAX_ITERATIONS))
    planned = resolved(iterations, cap)
    predicted = predicted_seconds(cost, n0, planned)
    report = {"minutes": config.minutes, "spent_s": spent_s, "available_s": available,
              "iterations": planned.iterations, "max_gaussians": planned.max_gaussians,
              "iterations_kept": iterations_fixed, "cap_kept": cap_fixed,
              "predicted_train_s": predicted, "predicted_total_s": spent_s + predicted}
    log.info("time budget %.1f min: %d iterations, cap %d Gaussians (predicted %.0f s of training after "
             "%.0f s of set-up; step cost %.3f s + %.2f us per Gaussian)", config.minutes,
             planned.iterations, planned.max_gaussians, predicted, spent_s, cost.fixed_s,
             1e6 * cost.per_gaussian_s)
    if iterations >= MAX_ITERATIONS and not iterations_fixed:
        log.info("the budget allows more than %d iterations; using %d", MAX_ITERATIONS, MAX_ITERATIONS)
    if predicted > available * 1.05:
        log.warning("the time budget of %.1f min is too small for this scene at the smallest plan; "
                    "expect about %.1f min", config.minutes, (spent_s + predicted) / 60.0)
    return planned, report


def _largest_cap(fits, n0: int, upper: int) -> int:
    """Largest cap in [n0, upper] for which `fits(cap)` holds (bisection; n0 if none)."""
    lo, hi = n0, max(upper, n0)
    if fits(hi):
        return hi
    if not fits(lo):
        return lo
    while hi - lo > max(1, lo // 100):
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


class BudgetClock:
    """Re-plans a budgeted build's iterations from its measured time per iteration.

    Call `tick` after every iteration with the iteration, the Gaussian count and
    `time.perf_counter()`; it returns the new number of iterations when a re-plan
    changes it, else None. See the module docstring (step 3).
    """

    def __init__(self, config: BuildConfig, wall_start: float) -> None:
        self.budget_s = 60.0 * float(config.minutes)
        self.wall_start = wall_start
        self.iterations = config.iterations
        self.cap = config.max_gaussians
        self.densify_stop = config.densify_stop
        self.stamps: deque[float] = deque(maxlen=REPLAN_WINDOW_MAX + 1)
        self.next_check: int | None = None
        self.replans: list[dict[str, Any]] = []

    def tick(self, iteration: int, count: int, now: float) -> int | None:
        if not self.stamps and count < 0.98 * self.cap and iteration < self.densify_stop:
            return None  # still growing: the probe's plan holds
        self.stamps.append(now)
        if len(self.stamps) <= REPLAN_WINDOW:
            return None
        if self.next_check is None:
            self.next_check = iteration
        if iteration < self.next_check:
            return None
        per_iteration = (self.stamps[-1] - self.stamps[0]) / (len(self.stamps) - 1)
        left = self.budget_s * (1.0 - RESERVE) - (now - self.wall_start)
        planned = int(min(max(iteration + int(left / max(per_iteration, 1e-9)), iteration + 1),
                          MAX_ITERATIONS))
        self.next_check = iteration + max(REPLAN_WINDOW, int(REPLAN_SHARE * planned))
        if abs(planned - self.iterations) <= 0.01 * self.iterations:
            return None
        self.replans.append({"iteration": iteration, "s_per_iteration": per_iteration,
                             "iterations_before": self.iterations, "iterations": planned})
        log.info("time budget: at iteration %d, %.3f s per iteration over the last %d -> %d iterations "
                 "(was %d)", iteration, per_iteration, len(self.stamps) - 1, planned, self.iterations)
        self.iterations = planned
        return planned
