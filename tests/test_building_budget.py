"""Time budgets (`--minutes`) and the pixel-scaled default cap."""

from __future__ import annotations

import pytest
from tests.test_building_scene import make_scene

from coseg.building import BuildConfig, train
from coseg.building.budget import (MAX_ITERATIONS, MIN_ITERATIONS, REPLAN_WINDOW, RESERVE, BudgetClock,
                                   StepCost, mean_count, plan_budget, predicted_seconds)
from coseg.errors import CosegError
from coseg.run import RunDir

PIXELS = 64 * 320 * 240


def test_default_cap_scales_with_the_training_pixels():
    c = BuildConfig()
    assert c.resolved(PIXELS).max_gaussians == 61_440
    assert c.resolved(4 * PIXELS).max_gaussians == 4 * 61_440
    assert c.resolved(1000).max_gaussians == 2 * c.init_max_points  # room to grow from the start
    assert c.resolved(1000, initial=700).max_gaussians == 1400
    assert BuildConfig(max_gaussians=5000).resolved(PIXELS).max_gaussians == 5000
    assert BuildConfig().iterations == BuildConfig().resolved(PIXELS).iterations == 3000
    with pytest.raises(CosegError, match="minutes"):
        BuildConfig(minutes=0)


def test_mean_count_follows_the_schedule():
    c = BuildConfig(iterations=3000, max_gaussians=60_000).resolved(PIXELS)
    m = mean_count(20_000, 60_000, c)
    assert 20_000 < m < 60_000
    assert m > mean_count(20_000, 40_000, c)
    assert mean_count(20_000, 60_000, BuildConfig(iterations=3000, densify_start=3000).resolved(PIXELS)) == 20_000


def test_plan_fits_the_budget_and_keeps_explicit_settings():
    cost = StepCost(fixed_s=0.05, per_gaussian_s=4e-6)
    plan, report = plan_budget(BuildConfig(minutes=10), cost, 20_000, 5.0, PIXELS)
    assert plan.max_gaussians == 61_440
    assert report["predicted_total_s"] == pytest.approx(600 * 0.96, rel=0.01)
    assert plan.densify_stop == round(plan.iterations / 2)
    # more time, more iterations; a set iteration count moves the cap instead
    longer, _ = plan_budget(BuildConfig(minutes=20), cost, 20_000, 5.0, PIXELS)
    assert longer.iterations > plan.iterations
    fixed, rep = plan_budget(BuildConfig(minutes=10, iterations=1200, budget_fixed=["iterations"]), cost,
                             20_000, 5.0, PIXELS)
    assert fixed.iterations == 1200 and rep["iterations_kept"]
    assert predicted_seconds(cost, 20_000, fixed) <= rep["available_s"] * 1.01
    capped, _ = plan_budget(BuildConfig(minutes=10, max_gaussians=30_000, budget_fixed=["max_gaussians"]),
                            cost, 20_000, 5.0, PIXELS)
    assert capped.max_gaussians == 30_000 and capped.iterations > plan.iterations
    with pytest.raises(CosegError, match="budget_fixed"):
        BuildConfig(budget_fixed=["seed"])


def test_a_tight_budget_shrinks_the_cap_before_the_iterations():
    cost = StepCost(fixed_s=0.05, per_gaussian_s=4e-6)
    plan, _ = plan_budget(BuildConfig(minutes=3), cost, 20_000, 5.0, PIXELS)
    assert plan.iterations >= MIN_ITERATIONS and 20_000 <= plan.max_gaussians < 61_440
    tiny, report = plan_budget(BuildConfig(minutes=0.2), cost, 20_000, 5.0, PIXELS)
    assert tiny.max_gaussians == 20_000 and tiny.iterations < MIN_ITERATIONS
    huge, _ = plan_budget(BuildConfig(minutes=10_000), cost, 20_000, 5.0, PIXELS)
    assert huge.iterations == MAX_ITERATIONS


def test_minutes_plans_the_run_and_records_the_plan(tmp_path):
    scene = make_scene(tmp_path / "scene")
    run = RunDir(tmp_path / "run")
    records = list(train(scene, BuildConfig(minutes=0.05, init_max_points=150, far_field_spacing=0,
                                            max_sh_degree=0, checkpoint_every=1000), run))
    building = run.read_config()["building"]
    plan = building["budget"]
    assert plan["minutes"] == 0.05 and plan["probe_counts"]["all"] == 150
    assert building["settings"]["iterations"] == records[-1]["iterations"] == records[-1]["summary"]["iterations"]
    replans = plan.get("replans", [])
    assert plan["iterations"] == (replans[0]["iterations_before"] if replans else records[-1]["iterations"])
    assert building["settings"]["max_gaussians"] == plan["max_gaussians"] >= 150
    summary = records[-1]["summary"]
    assert summary["budget"]["actual_total_s"] > 0


def _ticks(clock: BudgetClock, seconds_per_iteration: float, until: int, count: int, start: int = 0):
    """Feed `clock` iterations start+1..until at a constant pace; the last re-plan (or None)."""
    last = None
    for i in range(start + 1, until + 1):
        got = clock.tick(i, count, i * seconds_per_iteration)
        last = got if got is not None else last
    return last


def test_the_clock_re_plans_the_end_from_the_measured_pace():
    config = BuildConfig(minutes=1, iterations=1000, max_gaussians=100).resolved(PIXELS)
    fast = BudgetClock(config, wall_start=0.0)
    assert _ticks(fast, 0.03, REPLAN_WINDOW + 50, count=50) is None  # still growing: the probe's plan holds
    got = _ticks(fast, 0.03, 400, count=100, start=REPLAN_WINDOW + 50)
    assert got == pytest.approx(60 * (1 - RESERVE) / 0.03, abs=2)  # 1,920: the steps are cheaper than planned
    assert fast.replans and fast.replans[0]["iterations_before"] == 1000
    slow = BudgetClock(config, wall_start=0.0)
    got = _ticks(slow, 0.12, 300, count=100)  # slower than planned: the run ends early, within the budget
    assert got == pytest.approx(60 * (1 - RESERVE) / 0.12, abs=2)
    late = BudgetClock(config, wall_start=0.0)
    # the budget is spent at the first re-plan (iteration 101): the run ends at the next iteration
    assert _ticks(late, 1.0, REPLAN_WINDOW + 1, count=100) == REPLAN_WINDOW + 2
    ended = BudgetClock(config, wall_start=0.0)  # the cap was never reached, but densification ended
    assert _ticks(ended, 0.03, config.densify_stop + REPLAN_WINDOW - 1, count=10) is None
    assert _ticks(ended, 0.03, config.densify_stop + REPLAN_WINDOW, count=10,
                  start=config.densify_stop + REPLAN_WINDOW - 1) is not None
    huge = BudgetClock(BuildConfig(minutes=10_000, iterations=1000, max_gaussians=100).resolved(PIXELS), 0.0)
    assert _ticks(huge, 0.01, 200, count=100) == MAX_ITERATIONS
