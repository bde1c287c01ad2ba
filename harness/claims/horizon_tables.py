"""The horizon claim's numbers: its runs as one frame, horizons with intervals and the budget
check, steps to solve, accuracy by lag, the tuning choices and gradient horizons."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.analysis import stats
from harness.claims.columns import metric, numeric, outcome, param
from harness.analysis.horizon_fit import firth_logistic, horizon, majority

MAIN, CHECK = "main", "budget-x2"
STEP = 2 ** 0.5  # the ladder's ratio between neighbouring lags: the finest move it can resolve


def frame(runs: pd.DataFrame, claim) -> pd.DataFrame:
    """One row per ladder run: cell, lag, seed, ladder, solved, steps_to_solve, accuracy, ..."""
    stage = runs["claim_stage"] if "claim_stage" in runs else pd.Series("", index=runs.index)
    part = runs[stage == "ladder"]
    out = pd.DataFrame({
        "run_id": part["run_id"], "ladder": part["claim_grid"], "variant": param(part, "model.variant"),
        "lag": numeric(part, "task.length").astype(int), "seed": numeric(part, "train.seed").astype(int),
        "steps": numeric(part, "train.steps").astype(int), "lr": numeric(part, "train.lr"),
        "outcome": outcome(part), "accuracy": metric(part, "test_accuracy"),
        "steps_to_solve": metric(part, "steps_to_solve"), "sequences_to_solve": metric(part, "sequences_to_solve"),
        "gradient_horizon": metric(part, "gradient_horizon"),
        "gradient_censored": metric(part, "gradient_horizon_censored")})
    out["solved"] = [claim.solved({"solved": v}) for v in metric(part, "solved", 0.0)]
    return out.reset_index(drop=True)


def ladders(part: pd.DataFrame) -> dict[int, list[tuple[float, bool]]]:
    return {int(seed): sorted(zip(p["lag"].astype(float), p["solved"].astype(bool)))
            for seed, p in part.groupby("seed")}


def doubled(main: pd.DataFrame, check: pd.DataFrame, seeds: list[int]) -> dict[int, list[tuple[float, bool]]]:
    """The doubled-budget ladders of `seeds`: a lag solved within the first budget is solved (the
    same run); the others are the check ladder's re-runs."""
    out = {}
    for seed in seeds:
        first = {lag: ok for lag, ok in zip(main[main.seed == seed]["lag"], main[main.seed == seed]["solved"])}
        again = {lag: ok for lag, ok in zip(check[check.seed == seed]["lag"], check[check.seed == seed]["solved"])}
        lags = sorted(set(first) | set(again))
        out[seed] = [(float(lag), bool(first.get(lag) or again.get(lag, False))) for lag in lags]
    return out


def horizons(frame: pd.DataFrame, cells) -> pd.DataFrame:
    rows = []
    # The check's seeds are those any cell re-ran; a cell with nothing unsolved to re-run on them
    # has the same doubled-budget ladder as its first one (every lag carried over).
    check_seeds = sorted(set(frame[frame.ladder == CHECK]["seed"]))
    for cell in [c for c in cells if c in set(frame["variant"])]:
        main = frame[(frame.variant == cell) & (frame.ladder == MAIN)]
        check = frame[(frame.variant == cell) & (frame.ladder == CHECK)]
        if main.empty:
            continue
        h1 = horizon(ladders(main))
        seeds = [s for s in check_seeds if s in set(main["seed"])]
        h2 = horizon(doubled(main, check, seeds)) if seeds else None
        same = horizon(ladders(main[main.seed.isin(seeds)])) if seeds else None
        # The budget's own effect: the doubled budget against the first, on the same seeds. It
        # limits the horizon when it moves it by more than the interval (at least a ladder step).
        limited = h2 is not None and moved(same.lag, h2.lag, h1)
        rows.append({"variant": cell, "horizon": h1.lag, "ci_low": h1.low, "ci_high": h1.high,
                     "censored": h1.censored, "text": h1.text(), "majority_rule": majority(ladders(main)),
                     "seeds": h1.seeds, "runs": len(main), "longest_lag_run": int(main["lag"].max()),
                     "lr": float(main["lr"].iloc[0]),
                     "horizon_same_seeds": math.nan if same is None else same.lag,
                     "horizon_x2": math.nan if h2 is None else h2.lag,
                     "text_x2": "not run" if h2 is None else h2.text(),
                     "check_seeds": len(seeds), "budget_limited": bool(limited)})
    return pd.DataFrame(rows)


def moved(first: float, second: float, h1) -> bool:
    """Whether the horizon moved from `first` to `second` (same seeds, 1x and 2x budget) by more
    than h1's 95% interval allows, taking at least one ladder step either way."""
    up = max(h1.high / h1.lag, STEP) if h1.lag > 0 else STEP
    down = max(h1.lag / h1.low, STEP) if h1.low > 0 else STEP
    return second > first * up or second < first / down


def steps_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Steps (and sequences) to solve against lag: the cost of memory (solved runs only)."""
    rows = []
    for (cell, lag), part in frame[frame.ladder == MAIN].groupby(["variant", "lag"]):
        solved = part[part["solved"]]
        q = solved["steps_to_solve"].quantile([0.25, 0.5, 0.75]) if len(solved) else pd.Series([math.nan] * 3)
        rows.append({"variant": cell, "lag": lag, "runs": len(part), "solved": len(solved),
                     "median_steps_to_solve": q.iloc[1], "q25": q.iloc[0], "q75": q.iloc[2],
                     "median_sequences_to_solve": solved["sequences_to_solve"].median() if len(solved) else math.nan,
                     "step_budget": int(part["steps"].iloc[0])})
    return pd.DataFrame(rows)


def by_lag(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (ladder, cell, lag), part in frame.groupby(["ladder", "variant", "lag"]):
        mean, lo, hi = stats.mean_interval(part["accuracy"], bounds=stats.UNIT)
        rows.append({"ladder": ladder, "variant": cell, "lag": lag, "runs": len(part),
                     "solved": int(part["solved"].sum()), "accuracy": mean, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def gradient_table(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (cell, lag), part in frame[frame.ladder == MAIN].groupby(["variant", "lag"]):
        rows.append({"variant": cell, "lag": lag, "median_gradient_horizon": part["gradient_horizon"].median(),
                     "censored_fraction": part["gradient_censored"].mean(), "runs": len(part)})
    return pd.DataFrame(rows)


def tuning_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The tuning studies' choices, one row per cell."""
    stage = runs["claim_stage"] if "claim_stage" in runs else pd.Series("", index=runs.index)
    part = runs[stage == "tuning"]
    if part.empty:
        return pd.DataFrame(columns=["variant", "chosen_lr", "trials", "objective", "best_objective"])
    return pd.DataFrame({
        "variant": param(part, "model.variant"), "chosen_lr": numeric(part, "train.lr"),
        "trials": numeric(part, "tuning.trials"), "objective": param(part, "tuning.metric"),
        "best_objective": metric(part, "tuning_best"),
        "best_trial_test_accuracy": metric(part, "tuning_test_accuracy")}).reset_index(drop=True)


def fitted_curve(part: pd.DataFrame, lags: np.ndarray) -> np.ndarray | None:
    """P(solved) on `lags` from the Firth fit of one cell's runs (None when nothing to fit)."""
    fit = firth_logistic(np.log(part["lag"].astype(float)), part["solved"].astype(float))
    if fit is None:
        return None
    a, b = fit
    return 1 / (1 + np.exp(-(a + b * np.log(lags))))


def figures(frame: pd.DataFrame, table: pd.DataFrame, claimed: dict, context) -> dict:
    from harness.claims import horizon_plots as plots

    out = {"solve_probability": plots.solve_probability(frame, table, fitted_curve),
           "horizons": plots.horizon_bars(table, claimed),
           "steps_to_solve": plots.steps_to_solve(steps_table(frame))}
    profiles = _profiles(frame, context)
    if profiles is not None:
        out["gradient_flow"] = plots.gradient_profiles(profiles)
    return out


def _profiles(frame: pd.DataFrame, context) -> pd.DataFrame | None:
    """The last gradient-flow profile of seed 0 of every cell at the longest lag all of them ran."""
    part = frame[(frame.ladder == MAIN) & (frame.seed == 0) & (frame.outcome == "finished")]
    if part.empty or context is None:
        return None
    common = set.intersection(*(set(p["lag"]) for _, p in part.groupby("variant")))
    if not common:
        return None
    lag, out = max(common), []
    for row in part[part["lag"] == lag].itertuples():
        try:
            csv = pd.read_csv(context.artifact(row.run_id, "gradient_flow.csv"))
        except Exception:  # a run without the artifact (probe off): left out of the figure
            continue
        last = csv[csv["step"] == csv["step"].max()]
        out.append(last.assign(variant=row.variant, length=lag))
    return pd.concat(out) if out else None

