"""Small-sample statistics for claim reports: t-intervals of means and Welch intervals of
differences (scipy's), cut to the range a quantity can take, and their printed form. The
horizon's bootstrap interval is harness.analysis.horizon_fit's."""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
from scipy import stats as sps

UNIT = (0.0, 1.0)  # accuracies and fractions
NONNEGATIVE = (0.0, math.inf)  # errors, times


def mean_interval(values: Sequence[float], level: float = 0.95,
                  bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t interval of the mean (scipy's ttest_1samp), cut to
    `bounds` (the range the quantity can take: with 3 seeds the t-interval of an accuracy easily
    reaches past 1). None and non-finite values are left out; with one value, or values that
    are all equal, the interval is the mean; with none, all three are nan."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size == 1:
        return (mean, mean, mean)
    if np.ptp(x) == 0:  # no spread: scipy's interval would be nan (0/0)
        low = high = mean
    else:
        low, high = map(float, _quiet(sps.ttest_1samp, x, 0.0).confidence_interval(level))
    return (mean, max(bounds[0], low), min(bounds[1], high))


def difference_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high): Welch's interval (scipy's ttest_ind with unequal
    variances); low and high are nan when either side has < 2 values, and equal the
    difference when neither side varies."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(x.mean() - y.mean()) if x.size and y.size else math.nan
    if x.size < 2 or y.size < 2:
        return (diff, math.nan, math.nan)
    if np.ptp(x) == 0 and np.ptp(y) == 0:  # no spread: scipy's interval would be nan (0/0)
        return (diff, diff, diff)
    low, high = _quiet(sps.ttest_ind, x, y, equal_var=False).confidence_interval(level)
    return (diff, float(low), float(high))


def _quiet(test, *args, **kwargs):
    """scipy's test without its precision-loss RuntimeWarning, which it gives for a side whose
    values are all equal (exact variance 0) as for a nearly constant one; the interval is the
    one scipy computes either way."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return test(*args, **kwargs)


def fmt_interval(mean: float, low: float, high: float, digits: int = 3, scale: float = 1.0) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)) or low == high:
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"
