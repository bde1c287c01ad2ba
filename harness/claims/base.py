"""A claim: the statement, where it comes from, its experiment grid per budget (data), and
the analysis that turns its MLflow runs into tables, figures and a computed verdict."""
from __future__ import annotations

import dataclasses
import enum
import itertools
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from harness.claims.plans import Ladder, Tuning

if TYPE_CHECKING:  # declarations import without pandas: `--help` lists claims in milliseconds
    import pandas as pd

BUDGETS = ("smoke", "quick", "full")
# The cells of the mission: a claim studies these unless it pins fewer; a cell added to the
# registry joins a claim only when asked (`reproduce CLAIM --variants ...`), never by accident.
MISSION_CELLS = ("simple_rnn", "lstm", "gru", "peephole_lstm", "phased_lstm", "skip_lstm", "skip_gru")


class Verdict(enum.StrEnum):
    """What a claim's analysis concludes; computed from the runs by the rule its protocol states."""

    REPRODUCED = "reproduced"
    PARTLY = "partly reproduced"  # some of the claim's parts (or settings) hold, others do not
    NOT_REPRODUCED = "not reproduced"
    UNTESTABLE = "untestable"  # the runs cannot decide (missing cells, a budget that limits the answer)
    INCONCLUSIVE = "inconclusive"  # an interval holds both the claimed effect and its absence (interval_match)


def interval_match(low: float, high: float, match_low: float, match_high: float) -> str:
    """The one rule every claim uses to compare an interval with a claimed value: 'yes' when the
    95% interval [low, high] lies inside the range that matches the claim [match_low, match_high],
    'no' when it lies wholly outside it, 'inconclusive' when it holds values of both (the data
    cannot tell the claimed effect from its absence at this budget). For a claimed difference d
    against none, the matching range is the side of d/2 that d lies on (`difference_match`)."""
    if match_low <= low and high <= match_high:
        return "yes"
    if high < match_low or low > match_high:
        return "no"
    return "inconclusive"


def difference_match(low: float, high: float, claimed: float) -> str:
    """interval_match for a claimed difference (e.g. +0.10 accuracy) against no difference: it
    matches from half the claimed effect on, so an interval holding both 0 and the claimed effect
    is 'inconclusive', one above d/2 'yes', one below it 'no'."""
    half = claimed / 2
    return interval_match(low, high, half, float("inf")) if claimed >= 0 else \
        interval_match(low, high, float("-inf"), half)


def verdict_of_matches(matches: dict[str, str]) -> Verdict:
    """A claim of several parts (e.g. "~7 for a vanilla RNN, ~100 for an LSTM"): reproduced when
    every part matches, not reproduced when none does, partly in between; untestable when any
    part could not be tested. An 'inconclusive' part counts neither for nor against: with no
    part that fails, the claim is inconclusive; with one, the decided parts give the verdict."""
    values = list(matches.values())
    if not values or "untestable" in values:
        return Verdict.UNTESTABLE
    decided = [v for v in values if v != "inconclusive"]
    if len(decided) < len(values) and "no" not in decided:
        return Verdict.INCONCLUSIVE
    if all(v == "yes" for v in decided):
        return Verdict.REPRODUCED
    return Verdict.NOT_REPRODUCED if all(v == "no" for v in decided) else Verdict.PARTLY


def against_claims(table: pd.DataFrame, claimed: dict[str, float], match: Callable[[dict | None, float], str],
                   shown: dict[str, str]) -> tuple[list[dict], dict[str, str]]:
    """One row per claimed cell of `table` (one row per variant): variant, the claimed value, the
    `shown` columns (heading: table column) and whether it matches (`match(row, claimed)`; row
    None for a cell not run, whose columns read 'n/a'). Returns (rows, {cell: match}) for
    verdict_of_matches."""
    index = {r["variant"]: r for r in table.to_dict("records")}
    rows, matches = [], {}
    for cell, value in claimed.items():
        row = index.get(cell)
        matches[cell] = match(row, value)
        columns = {heading: "n/a" if row is None else row[key] for heading, key in shown.items()}
        rows.append({"variant": cell, "claimed": f"~{value}", **columns, "matches": matches[cell]})
    return rows, matches


@dataclasses.dataclass(frozen=True)
class Grid:
    """One sub-grid: fixed config values and axes whose cartesian product (x seeds) is run.
    Keys are config fields as for --set ("task.length", "model.variant", ...)."""

    label: str
    fixed: dict[str, Any]
    axes: dict[str, tuple]
    seeds: int | None = None  # overrides the budget's seed count for this grid
    tuned_by: str | None = None  # a Tuning whose chosen values (per model.variant) every point takes

    def points(self) -> list[dict[str, Any]]:
        keys = list(self.axes)
        return [{**self.fixed, **dict(zip(keys, values))} for values in itertools.product(*self.axes.values())]


@dataclasses.dataclass(frozen=True)
class Planned:
    """One run of a claim: its config values and the tags that place it in the grid."""

    values: dict[str, Any]
    tags: dict[str, str]

    @property
    def sets(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.values.items()]


@dataclasses.dataclass
class ClaimReport:
    """What an analysis produces; the report writer turns it into files and HTML."""

    verdict: Verdict  # computed from the data
    verdict_detail: str  # the explanation: the numbers behind it, one paragraph of Markdown
    tables: dict[str, pd.DataFrame]  # name -> table (CSV + Markdown)
    figures: dict[str, Any]  # name -> matplotlib figure (PNG + SVG)
    notes: list[str] = dataclasses.field(default_factory=list)


class Claim:
    """Subclasses set the class attributes and implement `analyse`; one file per claim."""

    name: ClassVar[str]
    title: ClassVar[str]
    statement: ClassVar[str]  # the claim under test, as its source states it
    sources: ClassVar[str]
    protocol: ClassVar[str]  # Markdown: how the claim is tested and how the verdict is computed
    seeds: ClassVar[dict[str, int]] = {"smoke": 1, "quick": 3, "full": 5}
    trains: ClassVar[bool] = True  # False: runs only measure (e.g. parameter counts)
    cells: ClassVar[tuple[str, ...]] = MISSION_CELLS  # the cells the claim studies (pinned, not the registry)

    def __init__(self, cells: tuple[str, ...] | None = None):
        """`cells` replaces the claim's pinned list (reproduce/report --variants)."""
        if cells is not None:
            self.cells = tuple(cells)

    def grids(self, budget: str) -> tuple[Grid, ...]:
        """Static grids: cartesian products of values, every point run (optional)."""
        return ()

    def tunings(self, budget: str) -> tuple[Tuning, ...]:
        """Tuning studies run before the ladders that use them (optional)."""
        return ()

    def ladders(self, budget: str) -> tuple[Ladder, ...]:
        """Lag ladders, run after the tunings, each after the ladder it checks (optional)."""
        return ()

    def solved(self, metrics: dict[str, float]) -> bool:
        """Whether a ladder run solved its lag (ladders stop on unsolved runs): the task's own
        criterion reached on validation during training."""
        value = metrics.get("solved", 0.0)
        return value == value and value > 0.5  # NaN: not solved

    def plan(self, budget: str, seeds: int | None = None, tuned: dict | None = None) -> list[Planned]:
        """The grids' runs. A grid tuned by a Tuning is planned only with `tuned` (label -> cell ->
        chosen values), after its study ran (harness/reproduce/stages.py); ladders are planned as they climb."""
        out = []
        for grid in self.grids(budget):
            if grid.tuned_by is not None and (tuned is None or grid.tuned_by not in tuned):
                continue
            count = seeds if seeds is not None else (grid.seeds or self.seeds[budget])
            for point in grid.points():
                label = " ".join(f"{k.split('.')[-1]}={point[k]}" for k in grid.axes)
                chosen = (tuned or {}).get(grid.tuned_by, {}).get(point.get("model.variant"), {})
                for seed in range(count):
                    values = {**point, **chosen, "train.seed": seed}
                    out.append(Planned(values, {"claim": self.name, "claim_budget": budget, "claim_grid": grid.label,
                                                "claim_point": f"{label} seed={seed}"}))
        return out

    def budget_lines(self, budget: str) -> list[str]:
        """The experiment of this budget in Markdown bullets, written from the same data that runs it."""
        lines = []
        for grid in self.grids(budget):
            seeds = grid.seeds or self.seeds[budget]
            fixed = ", ".join(f"`{k}={v}`" for k, v in grid.fixed.items())
            axes = "; ".join(f"`{k}` in {list(v)}" for k, v in grid.axes.items())
            lines.append(f"- **{grid.label}**: {axes}; {seeds} seed(s); fixed {fixed}")
        for t in self.tunings(budget):
            lines.append(f"- **{t.label}** (tuning): {t.trials} trials per cell of {', '.join(t.cells)} over "
                         f"{dict(t.space)}, minimising `{t.metric}`; fixed "
                         + ", ".join(f"`{k}={v}`" for k, v in t.fixed.items()))
        for lad in self.ladders(budget):
            lines.append(f"- **{lad.label}** (ladder): `{lad.lag_key}` in {list(lad.lags)}, stopping after "
                         f"{lad.stop_after} unsolved in a row; {lad.seeds} seeds per cell; fixed "
                         + ", ".join(f"`{k}={v}`" for k, v in lad.fixed.items()))
        return lines

    def measure(self, planned: Planned) -> dict[str, float]:
        """For claims that do not train: the metrics of one planned point."""
        raise NotImplementedError

    def analyse(self, runs: pd.DataFrame, context: "Context") -> ClaimReport:
        raise NotImplementedError

    @property
    def experiment(self) -> str:
        return f"claim-{self.name}"


@dataclasses.dataclass
class Context:
    """What an analysis may ask for beyond the run table: metric histories and artifacts (from the
    store, or from a claim folder's files with report --from-results)."""

    tracking_uri: str
    history: Callable[[list[str], str], pd.DataFrame]  # (run_ids, metric) -> run_id, step, value
    artifact: Callable[[str, str], Any]  # (run_id, path) -> local Path
