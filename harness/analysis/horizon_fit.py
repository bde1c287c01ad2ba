"""The memory horizon as a 50% point: logistic regression of "solved" on log(lag), with a
bootstrap interval over seeds.

A cell's horizon is the lag L50 at which its probability of solving the task falls to 1/2,
from P(solved | L) = σ(a + b·log L) fitted to every (seed, lag) run of the cell. Ladders of
lags (each seed climbs until it fails twice in a row) often separate solved from unsolved
perfectly, where the plain maximum-likelihood slope runs off to -∞; Firth's penalised
likelihood (Firth 1993, "Bias reduction of maximum likelihood estimates") keeps the estimate
finite and puts L50 between the last solved and the first failed lag. The 95% interval
resamples whole seeds (each seed's ladder is one unit, since its runs share an initialisation
stream) with replacement and refits; with 5 to 10 seeds the plain percentile interval is too
narrow, so its percentiles are expanded for the number of seeds (Hesterberg 2015). An L50 beyond the lags tested is censored: reported as
">= the longest lag" (or "< the shortest").
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np


def firth_logistic(x: np.ndarray, y: np.ndarray, iterations: int = 100) -> tuple[float, float] | None:
    """(a, b) maximising the Firth-penalised log-likelihood of y ~ σ(a + b x); None when the
    data cannot say anything (fewer than two distinct x, or one outcome only)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(np.unique(x)) < 2 or y.min() == y.max():
        return None
    X = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)

    def penalised(b: np.ndarray) -> float:
        p = 1 / (1 + np.exp(-(X @ b)))
        info = X.T @ (X * (p * (1 - p))[:, None])
        sign, logdet = np.linalg.slogdet(info)
        loglik = np.sum(y * np.log(np.clip(p, 1e-300, None)) + (1 - y) * np.log(np.clip(1 - p, 1e-300, None)))
        return loglik + 0.5 * logdet if sign > 0 else -np.inf

    current = penalised(beta)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(X @ beta)))
        w = p * (1 - p)
        info = X.T @ (X * w[:, None])
        inverse = np.linalg.inv(info)
        hat = np.einsum("ij,jk,ik->i", X * w[:, None], inverse, X)  # leverages h_i
        score = X.T @ (y - p + hat * (0.5 - p))  # Firth's modified score
        step = inverse @ score
        for _ in range(30):  # step halving keeps the penalised likelihood rising
            trial = beta + step
            value = penalised(trial)
            if value >= current - 1e-12:
                break
            step = step / 2
        beta, change, current = trial, np.abs(step).max(), value
        if change < 1e-9:
            break
    return float(beta[0]), float(beta[1])


@dataclasses.dataclass(frozen=True)
class Horizon:
    lag: float  # L50, cut to [shortest, longest] lag tested
    low: float  # 95% bootstrap interval over seeds, cut the same way
    high: float
    censored: str  # "", ">=" (still solving at the longest lag) or "<" (failing at the shortest)
    seeds: int

    def text(self) -> str:
        if not math.isfinite(self.lag):
            return "n/a"
        head = f"{self.censored} {self.lag:.0f}".strip() if self.censored else f"{self.lag:.0f}"
        return f"{head} [{self.low:.0f}, {self.high:.0f}]"


def crossing(lags: Sequence[float], solved: Sequence[float]) -> tuple[float, str]:
    """(L50, censoring) from one set of runs; L50 cut to the lags tested."""
    lags, solved = np.asarray(lags, float), np.asarray(solved, float)
    shortest, longest = float(lags.min()), float(lags.max())
    if solved.min() == 1:
        return longest, ">="
    if solved.max() == 0:
        return shortest, "<"
    fit = firth_logistic(np.log(lags), solved)
    if fit is None or fit[1] >= 0:  # no decline of solving with the lag: no crossing to speak of
        return (longest, ">=") if solved.mean() >= 0.5 else (shortest, "<")
    a, b = fit
    value = math.exp(-a / b)
    if value >= longest:
        return longest, ">="
    if value < shortest:
        return shortest, "<"
    return value, ""


def horizon(runs: dict[int, list[tuple[float, bool]]], *, resamples: int = 1000, level: float = 0.95,
            seed: int = 0) -> Horizon:
    """runs: seed -> [(lag, solved), ...]. L50 of all runs, and its percentile interval when
    whole seeds are resampled with replacement."""
    seeds = [s for s, r in runs.items() if r]
    if not seeds:
        return Horizon(math.nan, math.nan, math.nan, "", 0)
    pairs = [runs[s] for s in seeds]

    def estimate(chosen: list[list[tuple[float, bool]]]) -> tuple[float, str]:
        flat = [pair for ladder in chosen for pair in ladder]
        return crossing([p[0] for p in flat], [float(p[1]) for p in flat])

    value, censored = estimate(pairs)
    rng = np.random.default_rng(seed)
    cache: dict[tuple, float] = {}  # a resample is a multiset of seeds: with 5 seeds only 126 differ
    draws = []
    for _ in range(resamples):
        key = tuple(sorted(rng.integers(0, len(pairs), len(pairs)).tolist()))
        if key not in cache:
            cache[key] = estimate([pairs[i] for i in key])[0]
        draws.append(cache[key])
    tail = expanded_tail(len(pairs), level)
    low, high = np.percentile(draws, [100 * tail, 100 * (1 - tail)])
    return Horizon(value, float(min(low, value)), float(max(high, value)), censored, len(seeds))


def expanded_tail(n: int, level: float) -> float:
    """The tail probability of the expanded percentile interval (Hesterberg 2015, "What teachers
    should know about the bootstrap"): with n resampled units the plain percentile interval is
    too narrow by about sqrt((n - 1) / n) and by using z instead of t; the expanded one takes the
    percentiles Φ(±sqrt(n / (n - 1)) t_{n-1}), e.g. 0.1% and 99.9% for n = 5 at 95%."""
    from scipy import stats as sps

    if n < 2:
        return (1 - level) / 2
    return float(sps.norm.cdf(-math.sqrt(n / (n - 1)) * sps.t.ppf(0.5 + level / 2, n - 1)))


def majority(runs: dict[int, list[tuple[float, bool]]]) -> float:
    """The largest lag that most seeds solved (0 when none): the first protocol's rule. A seed
    whose ladder stopped below a lag counts as failing it."""
    lags = sorted({lag for ladder in runs.values() for lag, _ in ladder})
    seeds = [dict(ladder) for ladder in runs.values() if ladder]
    good = [lag for lag in lags if sum(bool(s.get(lag, False)) for s in seeds) * 2 > len(seeds)]
    return float(max(good)) if good else 0.0
