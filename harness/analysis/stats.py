"""Small-sample statistics for claim reports: t-intervals of means and Welch intervals of
differences (scipy's), cut to the range a quantity can take, and their printed form. The
horizon's bootstrap interval is harness.analysis.horizon_fit's."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as sps

UNIT = (0.0, 1.0)  # accuracies and fractions
NONNEGATIVE = (0.0, math.inf)  # errors, times


def mean_interval(values: Sequence[float], level: float = 0.95,
                  bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float, float]:
    """(mean, low, high): a Student-t interval, cut to `bounds` (the range the quantity can
    take: with 3 seeds the t-interval of an accuracy easily reaches past 1); with one value
    the interval is that value."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size == 1:
        return (mean, mean, mean)
    half = float(sps.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return (mean, max(bounds[0], mean - half), min(bounds[1], mean + half))


def difference_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high): Welch's interval; nan when either side has < 2 values."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(x.mean() - y.mean()) if x.size and y.size else math.nan
    if x.size < 2 or y.size < 2:
        return (diff, math.nan, math.nan)
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(vx + vy)
    if se == 0:
        return (diff, diff, diff)
    dof = (vx + vy) ** 2 / (vx ** 2 / (x.size - 1) + vy ** 2 / (y.size - 1))
    half = float(sps.t.ppf(0.5 + level / 2, dof) * se)
    return (diff, diff - half, diff + half)


def fmt_interval(mean: float, low: float, high: float, digits: int = 3, scale: float = 1.0) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)) or low == high:
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"
