"""The memory horizon as a function of the training budget: L50(B), and whether it has a wall.

Every run of a lag ladder trains until solved (or until the largest budget B_max) with a
constant learning rate and an evaluation schedule that does not depend on the budget
(harness/training/evaluation.py: eval_steps), so the run with a smaller budget B is the first
B steps of the B_max run: it solved ⇔ steps_to_solve ≤ B. One ladder at B_max therefore gives
the ladder of every smaller budget. At each budget the ladder's own stop rule is applied again
(a seed stops climbing after `stop_after` lags in a row that it did not solve within B), and
only the runs that ladder would have made count; L50(B) is then the horizon of
harness/analysis/horizon_fit.py (a Firth logistic 50% point).

Wall or growth: the slope of log L50 against log B, fitted by least squares over the budgets.
Its 95% interval comes from the same bootstrap as the horizons (whole seeds resampled; one
replicate gives L50 at every budget, hence one slope), with the expanded percentiles of
Hesterberg 2015. An L50 interval is never narrower than the ladder gap around L50 (`gap`). A censored L50 (beyond the ladder, ">= L"; below it, "< L") enters the fit at
its bound; when the censoring lies only on the growing side (">=" at the largest budgets, "<"
at the smallest) the fitted slope is a lower bound on the true one, which can still show
growth but never a wall. Rule (δ = DELTA):
- **wall**: the interval lies within [-δ, δ], and no point lies more than one ladder step (a
  factor √2) from the fitted line: a hump or a dip has a flat slope but is no wall;
- **grows**: the interval's lower end is above 0 (L50 ∝ B^α, α = the slope);
- **undetermined**: anything else (too wide an interval, or censoring that hides the answer).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from harness.analysis.horizon_fit import Horizon, crossing, expanded_tail

# A wall: across a 16x span of budgets the horizon moves by less than one step of the sqrt(2)
# lag ladder, i.e. |slope| <= log(sqrt 2) / log(16) = 0.125, and no budget's horizon strays
# from the fitted line by more than that one step.
STEP = math.log(2 ** 0.5)
DELTA = STEP / math.log(16)

Chain = Sequence[tuple[float, float]]  # one seed's ladder at B_max: (lag, steps_to_solve; nan = unsolved)


def budget_grid(b_max: int, span: int = 16) -> list[int]:
    """B_max / 2^k for k = log2(span) .. 0, smallest first: e.g. 400, 800, 1600, 3200, 6400."""
    doublings = round(math.log2(span))
    return [b_max // 2 ** k for k in range(doublings, -1, -1)]


def at_budget(chain: Chain, budget: float, stop_after: int = 2) -> list[tuple[float, bool]]:
    """The (lag, solved) runs the ladder would have made with budget B: solved ⇔ steps_to_solve
    ≤ B, in order of lag, stopping after `stop_after` unsolved lags in a row."""
    out, misses = [], 0
    for lag, steps in sorted(chain):
        solved = bool(steps == steps and steps <= budget)  # nan: not solved within B_max
        out.append((float(lag), solved))
        misses = 0 if solved else misses + 1
        if misses >= stop_after:
            break
    return out


@dataclasses.dataclass(frozen=True)
class Growth:
    """log L50 = c + slope·log B across the budgets, and what that says."""

    slope: float
    low: float  # 95% interval of the slope
    high: float
    kind: str  # "wall", "grows" or "undetermined"
    bound: str  # ">=" when censoring makes the slope a lower bound, else ""
    budgets: int  # budgets in the fit
    spread: float = 0.0  # the largest |log residual| of a point from the fitted line

    def text(self) -> str:
        if not math.isfinite(self.slope):
            return "n/a"
        return f"{self.kind}: α {self.bound + ' ' if self.bound else ''}{self.slope:.2f} [{self.low:.2f}, {self.high:.2f}]"


def slope(budgets: Sequence[float], horizons: Sequence[float]) -> float:
    """Least-squares slope of log horizon on log budget."""
    x, y = np.log(np.asarray(budgets, float)), np.log(np.asarray(horizons, float))
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def spread(x: Sequence[float], y: Sequence[float]) -> float:
    """The largest distance (in natural-log units) of a point's log y from the least-squares
    line of log y on log x: 0 for an exact power law; log 2 when a point is 2x off the line."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    fitted = ly.mean() + slope(x, y) * (lx - lx.mean())
    return float(np.abs(ly - fitted).max())


def censoring_bound(censored: Sequence[str]) -> str | None:
    """"" when nothing is censored, ">=" when the censoring only makes the slope a lower bound
    (">=" at budgets above every uncensored one, "<" below every uncensored one), None when it
    hides the answer (every budget censored, or censored on the other side)."""
    flags = list(censored)
    if not any(flags):
        return ""
    free = [i for i, c in enumerate(flags) if not c]
    if not free:
        return None
    for i, c in enumerate(flags):
        if (c == ">=" and i < max(free)) or (c == "<" and i > min(free)):
            return None
    return ">="


def classify(value: float, low: float, high: float, bound: str | None, delta: float = DELTA,
             spread: float = 0.0) -> str:
    """The rule of the module docstring (spread: the points' largest log distance from the fit)."""
    if bound is None or not all(map(math.isfinite, (value, low, high))):
        return "undetermined"
    if low > 0:
        return "grows"
    if bound == "" and -delta <= low and high <= delta and spread <= STEP:
        return "wall"
    return "undetermined"


def curve(chains: dict[int, Chain], budgets: Sequence[int], *, stop_after: int = 2, resamples: int = 1000,
          level: float = 0.95, delta: float = DELTA, seed: int = 0) -> tuple[list[Horizon], Growth]:
    """chains: seed -> its ladder at B_max. Returns L50 at every budget (with its interval over
    seeds) and the growth of L50 with the budget."""
    seeds = [s for s, c in chains.items() if len(c)]
    if not seeds:
        nan = math.nan
        return [Horizon(nan, nan, nan, "", 0) for _ in budgets], Growth(nan, nan, nan, "undetermined", "", 0)
    units = [chains[s] for s in seeds]

    def estimate(chosen: Sequence[Chain]) -> list[tuple[float, str]]:
        out = []
        for budget in budgets:
            flat = [pair for chain in chosen for pair in at_budget(chain, budget, stop_after)]
            out.append(crossing([p[0] for p in flat], [float(p[1]) for p in flat]))
        return out

    point = estimate(units)
    rng = np.random.default_rng(seed)
    cache: dict[tuple, list[float]] = {}  # a resample is a multiset of seeds: with 5 seeds only 126 differ
    draws = []
    for _ in range(resamples):
        key = tuple(sorted(rng.integers(0, len(units), len(units)).tolist()))
        if key not in cache:
            cache[key] = [value for value, _ in estimate([units[i] for i in key])]
        draws.append(cache[key])
    draws = np.asarray(draws)  # (resamples, budgets)
    tail = expanded_tail(len(units), level)  # the horizons' intervals; the slope's: growth()
    lows, highs = np.percentile(draws, [100 * tail, 100 * (1 - tail)], axis=0)
    lags = sorted({float(lag) for chain in units for lag, _ in chain})
    horizons = [Horizon(v, *gap(v, min(lo, v), max(hi, v), lags), c, len(units))
                for (v, c), lo, hi in zip(point, lows, highs)]
    return horizons, growth(budgets, [v for v, _ in point], draws, [c for _, c in point], len(units),
                            level=level, delta=delta)


def gap(value: float, low: float, high: float, lags: Sequence[float]) -> tuple[float, float]:
    """An interval widened to the ladder's resolution: L50 lies between two tested lags, and when
    every resample puts it in the same gap the bootstrap interval collapses to a point, though
    the data say only that it lies in that gap. (low, high) are widened to the tested lags
    around `value` (a value on a tested lag is its own bound)."""
    below = [lag for lag in lags if lag <= value]
    above = [lag for lag in lags if lag >= value]
    return float(min(low, below[-1] if below else low)), float(max(high, above[0] if above else high))


def growth(x: Sequence[float], point: Sequence[float], draws, censored: Sequence[str], units: int, *,
           level: float = 0.95, delta: float = DELTA) -> Growth:
    """Growth of a quantity with x: the log-log slope of `point` (one value per x), its interval
    from bootstrap `draws` (one row per replicate, one column per x; `units` resampled), the
    censoring of each point ("", ">=", "<") and the module's rule."""
    value = slope(x, point)
    tail = expanded_tail(units, level)
    slopes = [slope(x, row) for row in np.asarray(draws, float)]
    s_low, s_high = np.percentile(slopes, [100 * tail, 100 * (1 - tail)])
    s_low, s_high = float(min(s_low, value)), float(max(s_high, value))
    bound = censoring_bound(censored)
    stray = spread(x, point)
    return Growth(value, s_low, s_high, classify(value, s_low, s_high, bound, delta, stray), bound or "", len(x),
                  stray)


def seed_growth(x: Sequence[float], per_seed: dict[int, Sequence[float]], censored: Sequence[str], *,
                resamples: int = 1000, level: float = 0.95, delta: float = DELTA, seed: int = 0
                ) -> tuple[list[float], Growth]:
    """Growth of a per-seed measurement taken at every x (e.g. effective context at each
    probe of a run): the geometric mean over seeds at each x, and its log-log slope with the
    interval of whole seeds resampled. Returns (the geometric means, Growth)."""
    rows = np.log(np.asarray([per_seed[s] for s in sorted(per_seed)], float))  # (seeds, x)
    point = np.exp(rows.mean(axis=0))
    rng = np.random.default_rng(seed)
    draws = [np.exp(rows[rng.integers(0, len(rows), len(rows))].mean(axis=0)) for _ in range(resamples)]
    return list(point), growth(x, point, draws, censored, len(rows), level=level, delta=delta)


def power_law(lags: Sequence[float], costs: Sequence[float]) -> tuple[float, float] | None:
    """(exponent, prefactor) of cost ≈ prefactor · lag^exponent by least squares on the logs
    (None with fewer than two distinct lags): the cost of memory, e.g. sequences to solve."""
    lags, costs = np.asarray(lags, float), np.asarray(costs, float)
    keep = np.isfinite(costs) & (costs > 0)
    if len(np.unique(lags[keep])) < 2:
        return None
    exponent = slope(lags[keep], costs[keep])
    prefactor = float(np.exp(np.mean(np.log(costs[keep])) - exponent * np.mean(np.log(lags[keep]))))
    return exponent, prefactor
