"""L50 as a function of the training budget, from one ladder at the largest budget, and the
wall / grows / undetermined rule, on synthetic ladders whose truth is known."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis.budget_curve import (DELTA, at_budget, budget_grid, censoring_bound, classify, curve,
                                           growth, power_law, spread)

LAGS = (5, 7, 10, 14, 20, 28, 40, 57, 80, 113, 160, 226, 320, 453, 640)
B_MAX = 6400


def ladder(steps_for_lag, b_max=B_MAX, stop_after=2, lags=LAGS):
    """One seed's ladder at B_max: climb, each lag solved at steps_for_lag(lag) when that is
    within B_max, stop after two unsolved in a row."""
    out, misses = [], 0
    for lag in lags:
        steps = steps_for_lag(lag)
        solved = steps <= b_max
        out.append((lag, float(steps) if solved else math.nan))
        misses = 0 if solved else misses + 1
        if misses == stop_after:
            break
    return out


def test_the_budget_grid_spans_sixteen_times():
    assert budget_grid(6400) == [400, 800, 1600, 3200, 6400]
    assert budget_grid(1600) == [100, 200, 400, 800, 1600]


def test_a_smaller_budget_applies_the_ladders_stop_rule_again():
    chain = [(5, 100.0), (7, 300.0), (10, 900.0), (14, 2000.0), (20, math.nan), (28, math.nan)]
    assert at_budget(chain, 6400) == [(5, True), (7, True), (10, True), (14, True), (20, False), (28, False)]
    # within 400 steps 10 and 14 are unsolved: that ladder stops there, and 20 and 28 do not count
    assert at_budget(chain, 400) == [(5, True), (7, True), (10, False), (14, False)]
    assert at_budget(chain, 300)[:2] == [(5, True), (7, True)]  # solved at exactly B counts


def test_a_flat_horizon_is_a_wall():
    """Every seed solves its lags fast up to its own top lag (10 or 14) and never more, whatever
    the budget: L50 is the same at every budget."""
    rng = np.random.default_rng(1)
    chains = {}
    for seed in range(5):
        top = (10, 14)[seed % 2]
        chains[seed] = ladder(lambda lag, top=top: 50 * rng.uniform(1, 2) if lag <= top else 10 ** 9)
    horizons, growth = curve(chains, budget_grid(B_MAX))
    assert len({round(h.lag, 6) for h in horizons}) == 1
    assert growth.kind == "wall" and -DELTA <= growth.low <= growth.high <= DELTA
    assert growth.text().startswith("wall: α 0.00")


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_a_power_law_grows_with_its_exponent_inside_the_interval(alpha):
    """steps_to_solve = c · lag^(1/α) (times a seed's noise), so L50(B) ∝ B^α."""
    rng = np.random.default_rng(7)
    chains = {}
    c = 400 / 5 ** (1 / alpha)  # lag 5 is solved at 400 steps: every budget of the grid solves something
    for seed in range(6):
        noise = rng.lognormal(0, 0.3)
        chains[seed] = ladder(lambda lag, noise=noise: c * noise * lag ** (1 / alpha) * rng.lognormal(0, 0.1) / 4)
    horizons, growth = curve(chains, budget_grid(B_MAX))
    assert growth.kind == "grows" and growth.bound == ""
    assert growth.low <= alpha <= growth.high, growth
    assert all(b.lag > a.lag for a, b in zip(horizons, horizons[1:]))


def test_censoring_on_the_growing_side_is_a_lower_bound_and_never_a_wall():
    assert censoring_bound(["", "", ""]) == ""
    assert censoring_bound(["", "", ">=", ">="]) == ">="  # beyond the ladder at the largest budgets
    assert censoring_bound(["<", "", ""]) == ">="  # below the ladder at the smallest
    assert censoring_bound([">=", "", ""]) is None  # beyond at a small budget only: the fit says nothing
    assert censoring_bound([">=", ">="]) is None
    assert classify(0.0, -0.05, 0.05, "") == "wall"
    assert classify(0.0, -0.05, 0.05, ">=") == "undetermined"
    assert classify(0.4, 0.1, 0.7, ">=") == "grows"
    assert classify(0.1, -0.3, 0.5, "") == "undetermined"


def test_a_horizon_beyond_the_ladder_at_large_budgets_still_grows():
    """Every seed solves the whole ladder (to 320) within B_max, but not within B_max / 16."""
    chains = {seed: ladder(lambda lag, s=seed: 0.05 * lag ** 2 * (1 + 0.05 * s), lags=LAGS[:13]) for seed in range(5)}
    horizons, growth = curve(chains, budget_grid(B_MAX))
    assert horizons[-1].censored == ">=" and horizons[-1].text().startswith(">= 320")
    assert horizons[0].censored == "" and 80 < horizons[0].lag < 113
    assert growth.kind == "grows" and growth.bound == ">=" and growth.text().startswith("grows: α >= ")


def test_the_cost_of_memory_is_a_power_law_fit():
    lags = np.array([10, 20, 40, 80, 160])
    exponent, prefactor = power_law(lags, 3.0 * lags ** 1.5)
    assert exponent == pytest.approx(1.5) and prefactor == pytest.approx(3.0)
    assert power_law([10, 10], [1.0, 2.0]) is None


def test_an_interval_is_never_narrower_than_the_ladder_gap():
    """Every seed solves up to 40 and fails 57: each resample gives the same L50, but the data
    only say it lies between 40 and 57."""
    chains = {seed: ladder(lambda lag: 100 if lag <= 40 else 10 ** 9) for seed in range(5)}
    horizons, _ = curve(chains, budget_grid(B_MAX))
    assert all(40 < h.lag < 57 and h.low == 40 and h.high == 57 for h in horizons)


def test_a_hump_has_a_flat_slope_but_is_no_wall():
    """Up 14x and back down: the least-squares slope is about 0 with a tight interval, yet the
    points stray far from the line; only a curve within one ladder step (√2) of its line is a wall."""
    x = [400, 800, 1600, 3200, 6400]
    hump, flat = [26, 203, 362, 161, 26], [7.3, 8, 8.9, 8, 8]
    assert spread(x, [3 * v ** 0.5 for v in x]) == pytest.approx(0, abs=1e-9)  # a power law lies on its line
    assert math.exp(spread(x, hump)) == pytest.approx(3.9, abs=0.05)
    near = [[v * f for v in hump] for f in (0.97, 1.0, 1.03)]  # replicates: the slope's interval is tight
    found = growth(x, hump, near, [""] * 5, 5)
    assert -DELTA <= found.low <= found.high <= DELTA and found.kind == "undetermined"
    flat_draws = [flat, flat[::-1], [7.6, 8.2, 8.5, 7.9, 8.1]]  # slopes on either side of 0
    assert growth(x, flat, flat_draws, [""] * 5, 5).kind == "wall"
    assert classify(0.0, -0.05, 0.05, "", spread=math.log(2)) == "undetermined"
    assert classify(0.0, -0.05, 0.05, "", spread=0.3) == "wall"
