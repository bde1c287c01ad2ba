"""The horizon claim's numbers (protocol v3): its runs as one frame, L50 at every budget with its
interval, wall or growth per (cell, initialisation), the verdict at the recipe's budget, the cost
of memory (sequences to solve against lag), the tuning and pilots, accuracy and gradient horizons."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.analysis import stats
from harness.analysis.budget_curve import budget_grid, curve, power_law
from harness.claims.base import ClaimReport, interval_match, verdict_of_matches
from harness.claims.columns import metric, numeric, outcome, param, run_stage

PILOT = "pilot-"
# Hochreiter & Schmidhuber 1997, experiment 4 (the adding problem; LSTM without a forget gate):
# training sequences until solved, by sequence length (the cost of memory the LSTM was born with)
LSTM_1997 = {100: 74_000, 500: 209_000, 1000: 853_000}


def frame(runs: pd.DataFrame, claim) -> pd.DataFrame:
    """One row per ladder run (pilots included): cell, initialisation, lag, seed, B_max, solved,
    steps_to_solve, ..."""
    stage = run_stage(runs)
    part = runs[stage == "ladder"]
    label = part["claim_grid"].astype(str)
    out = pd.DataFrame({
        "run_id": part["run_id"], "ladder": label, "init": label.str.removeprefix(PILOT),
        "pilot": label.str.startswith(PILOT), "variant": param(part, "model.variant"),
        "lag": numeric(part, "task.length").astype(int), "seed": numeric(part, "train.seed").astype(int),
        "steps": numeric(part, "train.steps").astype(int), "batch": numeric(part, "train.batch_size").astype(int),
        "lr": numeric(part, "train.lr"), "outcome": outcome(part), "accuracy": metric(part, "test_accuracy"),
        "steps_to_solve": metric(part, "steps_to_solve"), "sequences_to_solve": metric(part, "sequences_to_solve"),
        "gradient_horizon": metric(part, "gradient_horizon"),
        "gradient_censored": metric(part, "gradient_horizon_censored")})
    out["solved"] = [claim.solved({"solved": v}) for v in metric(part, "solved", 0.0)]
    return out.reset_index(drop=True)


def groups(frame: pd.DataFrame, cells) -> list[tuple[str, str, pd.DataFrame]]:
    """(cell, initialisation, its main-ladder runs) in the claim's cell order, default first."""
    main = frame[~frame["pilot"]]
    return [(cell, init, part) for init in ("default", "chrono") for cell in cells
            if len(part := main[(main.variant == cell) & (main.init == init)])]


def curves(frame: pd.DataFrame, cells, span: int = 16) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per (cell, initialisation, budget): L50 and its interval; one row per (cell,
    initialisation): the growth of L50 with the budget)."""
    rows, growth_rows = [], []
    for cell, init, part in groups(frame, cells):
        b_max, batch = int(part["steps"].max()), int(part["batch"].iloc[0])
        budgets = budget_grid(b_max, span)
        chains = {int(seed): list(zip(p["lag"].astype(float),
                                      np.where(p["solved"], p["steps_to_solve"].astype(float), math.nan)))
                  for seed, p in part.groupby("seed")}
        horizons, growth = curve(chains, budgets)
        for budget, h in zip(budgets, horizons):
            rows.append({"variant": cell, "init": init, "budget_steps": budget, "budget_sequences": budget * batch,
                         "horizon": h.lag, "ci_low": h.low, "ci_high": h.high, "censored": h.censored,
                         "text": h.text(), "seeds": h.seeds, "b_max": b_max})
        growth_rows.append({"variant": cell, "init": init, "b_max": b_max, "budgets": growth.budgets,
                            "alpha": growth.slope, "alpha_low": growth.low, "alpha_high": growth.high,
                            "kind": growth.kind, "bound": growth.bound, "text": growth.text(),
                            "lr": float(part["lr"].iloc[0]), "runs": len(part)})
    return pd.DataFrame(rows), pd.DataFrame(growth_rows)


def at_recipe(table: pd.DataFrame, recipe: int) -> pd.DataFrame:
    """Per (cell, initialisation), the budget nearest (in log) to the recipe's `recipe` sequences."""
    if table.empty:
        return table
    distance = (np.log(table["budget_sequences"]) - math.log(recipe)).abs()
    return table.assign(distance=distance).sort_values("distance").groupby(["variant", "init"], sort=False) \
        .head(1).drop(columns="distance")


def match(row: dict | None, claimed: float, factor: float) -> str:
    """'yes', 'no', 'inconclusive' (the claims' shared interval rule on L50's interval against
    claimed / factor ... claimed x factor) or 'untestable' (no runs) for one (cell, budget) row;
    a censored L50 '>= L' is the interval [L, ∞), '< U' is [0, U]."""
    if row is None or row["horizon"] != row["horizon"]:
        return "untestable"
    high = math.inf if row["censored"] == ">=" else row["ci_high"]
    low = 0.0 if row["censored"] == "<" else row["ci_low"]
    return interval_match(low, high, claimed / factor, claimed * factor)


def verdict_table(table: pd.DataFrame, growth: pd.DataFrame, claim) -> pd.DataFrame:
    recipe = at_recipe(table, claim.recipe_sequences)
    rows = []
    for cell, claimed in claim.claimed.items():
        for init in ("default", "chrono"):
            found = recipe[(recipe.variant == cell) & (recipe.init == init)]
            if found.empty and init == "chrono":
                continue  # a cell without a forget gate has one initialisation
            row = None if found.empty else found.iloc[0].to_dict()
            g = growth[(growth.variant == cell) & (growth.init == init)]
            rows.append({"variant": cell, "init": init, "claimed": f"~{claimed}",
                         "budget_sequences": math.nan if row is None else int(row["budget_sequences"]),
                         "L50 at the recipe budget": "n/a" if row is None else row["text"],
                         "with the budget": "n/a" if g.empty else g.iloc[0]["text"],
                         "matches": match(row, claimed, claim.factor) if init == "default" else "(beside)"})
    return pd.DataFrame(rows)


def steps_table(frame: pd.DataFrame, cells) -> pd.DataFrame:
    """Steps and sequences to solve against lag in the main ladders: the cost of memory (median
    and quartiles over every run at the lag, an unsolved run counted as beyond B_max)."""
    rows = []
    for cell, init, part in groups(frame, cells):
        for lag, at in part.groupby("lag"):
            # over every run at the lag, an unsolved one counting as beyond B_max (so the fast seeds
            # alone do not make long lags look cheap); undefined where fewer than half solved
            steps = np.where(at["solved"], at["steps_to_solve"].astype(float), math.inf)
            with np.errstate(invalid="ignore"):  # a quartile between two unsolved runs is inf - inf: undefined
                q = np.quantile(steps, [0.25, 0.5, 0.75]) if 2 * at["solved"].sum() >= len(at) else [math.nan] * 3
            q = [v if math.isfinite(v) else math.nan for v in q]
            rows.append({"variant": cell, "init": init, "lag": lag, "runs": len(at), "solved": int(at["solved"].sum()),
                         "median_steps_to_solve": q[1], "q25": q[0], "q75": q[2],
                         "median_sequences_to_solve": q[1] * int(at["batch"].iloc[0]), "b_max": int(at["steps"].max())})
    return pd.DataFrame(rows)


def exponents(steps: pd.DataFrame) -> pd.DataFrame:
    """Sequences to solve ∝ lag^β per (cell, initialisation), fitted to the medians over seeds
    (lags that at least half the seeds solved), beside the 1997 LSTM's β on the adding problem."""
    rows = []
    for (cell, init), part in steps.groupby(["variant", "init"], sort=False):
        fit = power_law(part["lag"], part["median_sequences_to_solve"])
        rows.append({"variant": cell, "init": init, "beta": math.nan if fit is None else fit[0],
                     "lags_solved": int(part["median_sequences_to_solve"].notna().sum())})
    ref = power_law(list(LSTM_1997), list(LSTM_1997.values()))
    rows.append({"variant": "lstm (Hochreiter & Schmidhuber 1997, adding)", "init": "no forget gate",
                 "beta": ref[0], "lags_solved": len(LSTM_1997)})
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
    for (init, cell, lag), part in frame[~frame["pilot"]].groupby(["init", "variant", "lag"]):
        rows.append({"variant": cell, "init": init, "lag": lag,
                     "median_gradient_horizon": part["gradient_horizon"].median(),
                     "censored_fraction": part["gradient_censored"].mean(), "runs": len(part)})
    return pd.DataFrame(rows)


def tuning_table(runs: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, initialisation): the pilot's largest solved lag, the tuning lag and the choice."""
    stage = run_stage(runs)
    part = runs[stage == "tuning"]
    columns = ["variant", "init", "pilot_largest_solved", "tuning_lag", "chosen_lr", "trials", "best_objective"]
    if part.empty:
        return pd.DataFrame(columns=columns)
    pilots = frame[frame["pilot"]]
    out = pd.DataFrame({
        "variant": param(part, "model.variant"), "init": part["claim_grid"].astype(str).str.removeprefix("tune-"),
        "tuning_lag": numeric(part, "task.length"), "chosen_lr": numeric(part, "train.lr"),
        "trials": numeric(part, "tuning.trials"), "best_objective": metric(part, "tuning_best"),
        "best_trial_test_accuracy": metric(part, "tuning_test_accuracy")}).reset_index(drop=True)
    solved = pilots[pilots["solved"]].groupby(["variant", "init"])["lag"].max()
    out.insert(2, "pilot_largest_solved", [solved.get((v, i), math.nan) for v, i in zip(out.variant, out.init)])
    return out


def detail(verdict_rows: pd.DataFrame, growth: pd.DataFrame) -> str:
    parts = [f"{r['variant']} ({r['init']} init) L50 = {r['L50 at the recipe budget']} at "
             f"{r['budget_sequences']:,} training sequences (claimed {r['claimed']}; {r['with the budget']}): "
             f"{r['matches']}" for r in verdict_rows.to_dict("records") if r["budget_sequences"] == r["budget_sequences"]]
    others = [f"{r['variant']} ({r['init']}) {r['text']}" for r in growth.to_dict("records")
              if (r["variant"], r["init"]) not in {(v["variant"], v["init"]) for v in verdict_rows.to_dict("records")}]
    return "; ".join(parts) + "." + (f" With the budget, the other cells: {', '.join(others)}." if others else "")


def analyse(claim, runs: pd.DataFrame, context) -> ClaimReport:
    from harness.claims import horizon_plots as plots

    data = frame(runs, claim)
    table, growth = curves(data, claim.cells, claim.budget_span)
    verdicts = verdict_table(table, growth, claim)
    # the verdict: the claimed cells at the default initialisation; the chrono rows stand beside
    verdict = verdict_of_matches({r["variant"]: r["matches"] for r in verdicts.to_dict("records")
                                  if r["init"] == "default"})
    steps = steps_table(data, claim.cells)
    figures = {"horizon_vs_budget": plots.horizon_vs_budget(table, claim.claimed, claim.recipe_sequences),
               "sequences_to_solve": plots.sequences_to_solve(steps, exponents(steps), LSTM_1997)}
    profiles = plots.last_profiles(data, context)
    if profiles is not None:
        figures["gradient_flow"] = plots.gradient_profiles(profiles)
    return ClaimReport(verdict, detail(verdicts, growth), {
        "verdict": verdicts, "horizons_by_budget": table, "growth": growth, "steps_to_solve": steps,
        "memory_cost": exponents(steps), "accuracy_by_lag": by_lag(data), "tuning": tuning_table(runs, data),
        "gradient_horizon": gradient_table(data)}, figures)
