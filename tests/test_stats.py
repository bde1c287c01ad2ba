"""The report statistics against scipy's own implementations of the same intervals."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.analysis import stats


def test_mean_interval_is_the_student_t_interval():
    x = [0.91, 0.97, 0.88, 0.95]
    mean, lo, hi = stats.mean_interval(x)
    ref = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert mean == pytest.approx(np.mean(x))
    assert (lo, hi) == pytest.approx(ref)


def test_mean_interval_is_cut_to_the_range_of_the_quantity():
    x = [1.0, 1.0, 0.55]  # three seeds, one failed: the raw t-interval reaches far past 1
    raw = stats.mean_interval(x)
    assert raw[2] > 1
    mean, lo, hi = stats.mean_interval(x, bounds=stats.UNIT)
    assert (mean, lo) == pytest.approx(raw[:2]) and hi == 1.0
    assert stats.mean_interval([0.0, 0.001, 0.2], bounds=stats.NONNEGATIVE)[1] == 0.0


def test_mean_interval_degenerate_inputs():
    assert stats.mean_interval([0.7]) == (0.7, 0.7, 0.7)
    assert all(math.isnan(v) for v in stats.mean_interval([None, math.nan]))


def test_difference_interval_is_welchs():
    a, b = [0.99, 0.97, 0.98, 0.99], [0.80, 0.91, 0.62]
    diff, lo, hi = stats.difference_interval(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert (lo, hi) == pytest.approx((ref.low, ref.high))
    assert math.isnan(stats.difference_interval([1.0], b)[1])


def test_intervals_without_spread_are_the_value_itself_without_warnings(recwarn):
    assert stats.mean_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    assert stats.difference_interval([1.0, 1.0], [2.0, 2.0]) == (-1.0, -1.0, -1.0)
    one_side = stats.difference_interval([1.0, 1.0], [2.0, 3.0])  # scipy warns for the constant side
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    ref = sps.ttest_ind([1.0, 1.0], [2.0, 3.0], equal_var=False).confidence_interval(0.95)
    assert one_side[1:] == pytest.approx((ref.low, ref.high))
