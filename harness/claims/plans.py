"""Adaptive parts of a claim's experiment, declared as data: tuning studies and lag ladders.

A `Tuning` gives every cell of a claim the same number of Optuna trials over the same search
space and objective (equal tuning budget, Melis et al. 2018; Greff et al. 2015); the values it
chooses feed the ladders that name it. A `Ladder` climbs a list of task lengths (lags) per cell
and seed, in order, and stops that (cell, seed) after `stop_after` unsolved lags in a row:
long lags, the expensive ones, are only run for cells that can still solve them. A tuning with
`lag_from` tunes each cell where it can be measured: at the largest lag that cell's pilot ladder
(the ladder of that label, run first, untuned) solved (`tuning_lag`), never at a lag the cell
did not solve there.
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
    metric: str = "solve_cost"  # a metric every run logs (trainer.py); minimised
    per_cell: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    seed: int = 0  # the sampler's seed (one process per study: reproducible)
    lag_from: str | None = None  # a pilot Ladder's label: each cell is tuned at tuning_lag of its pilot
    lag_key: str = "task.length"

    def values(self, cell: str, lag: int | None = None) -> dict[str, Any]:
        """A trial's fixed values; with `lag_from`, `lag` (the cell's tuning lag) is required."""
        out = {**self.fixed, **self.per_cell.get(cell, {}), "model.variant": cell}
        if self.lag_from is not None:
            if lag is None:
                raise ValueError(f"tuning {self.label}: the lag comes from pilot {self.lag_from}; none given")
            out[self.lag_key] = int(lag)
        return out


def tuning_lag(pilot: Mapping[int, bool], lags: tuple[int, ...]) -> int:
    """Where a cell is tuned: the largest lag its pilot ladder solved (the cell's margin at the
    pilot's learning rate), so no cell is tuned on a lag it was not seen to solve; the shortest
    lag when the pilot solved none (the report shows the pilot beside the choice)."""
    solved = [lag for lag, ok in pilot.items() if ok]
    return int(max(solved)) if solved else int(min(lags))


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

    def values(self, cell: str, lag: int, seed: int, tuned: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {**self.fixed, **self.per_cell.get(cell, {}), **(tuned or {}), "model.variant": cell,
                self.lag_key: lag, "train.seed": seed}
