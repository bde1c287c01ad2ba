"""Adaptive parts of a claim's experiment, declared as data: tuning studies and lag ladders.

A `Tuning` gives every cell of a claim the same number of Optuna trials over the same search
space and objective (equal tuning budget, Melis et al. 2018; Greff et al. 2015); the values it
chooses feed the ladders that name it. A `Ladder` climbs a list of task lengths (lags) per cell
and seed, in order, and stops that (cell, seed) after `stop_after` unsolved lags in a row:
long lags, the expensive ones, are only run for cells that can still solve them. A ladder with
`budget_of` is the budget-sensitivity check of another: the same seeds (the first `seeds`) with
`factor` times the step budget; a lag the other ladder solved is the same run under the larger
budget (same seed, constant learning rate, training stops at the first solving evaluation),
so only the unsolved lags are run again.
harness/reproduce/stages.py runs them; this module only declares.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping


@dataclasses.dataclass(frozen=True)
class Tuning:
    label: str
    fixed: Mapping[str, Any]  # config values of every trial (--set names)
    cells: tuple[str, ...]
    space: Mapping[str, dict]  # harness/sweep/space.py form, e.g. {"train.lr": {"type": "float", ...}}
    trials: int  # per cell: the same for every cell
    metric: str = "solve_cost"  # a metric every run logs (train.py); minimised
    per_cell: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    seed: int = 0  # the sampler's seed (one process per study: reproducible)

    def values(self, cell: str) -> dict[str, Any]:
        return {**self.fixed, **self.per_cell.get(cell, {}), "model.variant": cell}


@dataclasses.dataclass(frozen=True)
class Ladder:
    label: str
    fixed: Mapping[str, Any]
    cells: tuple[str, ...]
    lags: tuple[int, ...]  # increasing
    seeds: int
    lag_key: str = "task.length"
    stop_after: int = 2  # unsolved lags in a row that end a (cell, seed) ladder
    per_cell: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    tuned_by: str | None = None  # the Tuning whose chosen values every run takes
    budget_of: str | None = None  # the ladder whose budget this one multiplies
    factor: int = 1  # step budget (train.steps) multiplier of `budget_of`

    def values(self, cell: str, lag: int, seed: int, tuned: Mapping[str, Any] | None = None) -> dict[str, Any]:
        out = {**self.fixed, **self.per_cell.get(cell, {}), **(tuned or {}), "model.variant": cell,
               self.lag_key: lag, "train.seed": seed}
        if self.factor != 1:
            out["train.steps"] = int(out["train.steps"]) * self.factor
        return out
