"""The `phased` claim's analysis: accuracy per regime and cell, the Phased - LSTM difference
with its Welch interval (and at half the budget), steps to 90%, the tuning, learning curves."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.analysis import stats
from harness.analysis.plotting import band, color, grid_of_axes
from harness.claims.base import ClaimReport, Verdict, difference_match, interval_match, verdict_of_matches
from harness.claims.columns import metric, numeric, outcome, param, run_stage


def analyse(claim, runs, context):
    """The claim's report from its runs (the neutral run table)."""
    tuning = _tuning(runs)
    stage = run_stage(runs)
    runs = runs[stage != "tuning"]
    frame = pd.DataFrame({"run_id": runs["run_id"], "regime": param(runs, "task.sampling"),
                          "variant": param(runs, "model.variant"), "seed": numeric(runs, "train.seed"),
                          "test": metric(runs, "test_accuracy"), "outcome": outcome(runs),
                          "steps": numeric(runs, "train.steps"), "batch": numeric(runs, "train.batch_size"),
                          "lr": numeric(runs, "train.lr"), "steps_to_90": metric(runs, "steps_to_solve"),
                          "per_epoch": claim.epoch / numeric(runs, "train.batch_size")})
    history = context.history(list(frame["run_id"]), "val_accuracy").merge(frame, on="run_id")
    history["epoch"] = history["step"] / history["per_epoch"]
    half = history[history["step"] <= history["steps"] / 2].groupby("run_id")["value"].max()
    frame["best_val_half"] = frame["run_id"].map(half)
    frame["best_val"] = frame["run_id"].map(history.groupby("run_id")["value"].max())
    # a run that never reached 90% counts at its budget: a bound that favours the slower cell
    frame["steps_to_90_or_budget"] = frame["steps_to_90"].fillna(frame["steps"])
    rows, regimes, speed = [], [], []
    for (regime, variant), part in frame.groupby(["regime", "variant"]):
        mean, lo, hi = stats.mean_interval(part["test"], bounds=stats.UNIT)
        reached = part["steps_to_90"].dropna()
        paper = dict(zip(claim.compared, claim.paper[regime])).get(variant)
        rows.append({"regime": regime, "variant": variant, "seeds": len(part), "lr": float(part["lr"].iloc[0]),
                     "test_accuracy": mean, "ci_low": lo, "ci_high": hi,
                     "paper_accuracy": None if paper is None else paper / 100,
                     "reached_90": f"{len(reached)}/{len(part)}",
                     "median_steps_to_90": float(reached.median()) if len(reached) else math.nan,
                     "median_sequences_to_90": float((reached * part.loc[reached.index, "batch"]).median())
                     if len(reached) else math.nan})
    for regime in claim.regimes:
        a, b = (frame[(frame.regime == regime) & (frame.variant == v)] for v in claim.compared)
        if not (len(a.dropna(subset=["test"])) and len(b.dropna(subset=["test"]))):
            continue
        paper = (claim.paper[regime][0] - claim.paper[regime][1]) / 100
        diff, lo, hi = stats.difference_interval(a["test"].dropna(), b["test"].dropna())
        whole = difference_match(lo, hi, paper)
        # the budget check compares like with like: best validation accuracy by half and by all of the budget
        h_diff, h_lo, h_hi = stats.difference_interval(a["best_val_half"].dropna(), b["best_val_half"].dropna())
        f_lo, f_hi = stats.difference_interval(a["best_val"].dropna(), b["best_val"].dropna())[1:]
        at_half, at_full = difference_match(h_lo, h_hi, paper), difference_match(f_lo, f_hi, paper)
        sensitive = {at_half, at_full} == {"yes", "no"}
        regimes.append({"regime": regime, "phased - lstm": diff, "ci_low": lo, "ci_high": hi, "paper gap": paper,
                        "match": whole, "half budget: best val difference": h_diff, "half_ci_low": h_lo,
                        "half_ci_high": h_hi, "match at half (val)": at_half, "match at full (val)": at_full,
                        "budget_sensitive": sensitive, "advantage": "inconclusive" if sensitive else whole})
        r, r_lo, r_hi = stats.difference_interval(np.log(b["steps_to_90_or_budget"]), np.log(a["steps_to_90_or_budget"]))
        speed.append({"regime": regime, "lstm / phased steps to 90%": math.exp(r), "ci_low": math.exp(r_lo),
                      "ci_high": math.exp(r_hi), "phased reached": f"{a['steps_to_90'].notna().sum()}/{len(a)}",
                      "lstm reached": f"{b['steps_to_90'].notna().sum()}/{len(b)}",
                      "phased faster": interval_match(r_lo, r_hi, 1e-12, math.inf)
                      if a["steps_to_90"].notna().any() or b["steps_to_90"].notna().any() else "neither reached 90%"})
    gaps = pd.DataFrame(regimes)
    verdict = verdict_of_matches({g["regime"]: g["advantage"] for g in regimes}) if regimes else Verdict.UNTESTABLE
    detail = "; ".join(f"{g['regime']}: Phased LSTM - LSTM test accuracy = "
                       f"{stats.fmt_interval(g['phased - lstm'], g['ci_low'], g['ci_high'])} "
                       f"(paper {g['paper gap']:+.2f}): {g['advantage']}"
                       + (" (budget-sensitive: on validation " + g["match at half (val)"] + " at half the budget, "
                          + g["match at full (val)"] + " at all of it)"
                          if g["budget_sensitive"] else "") for g in regimes)
    detail += "." + "".join(f" {s['regime']}: LSTM needs {s['lstm / phased steps to 90%']:.2f}x "
                            f"[{s['ci_low']:.2f}, {s['ci_high']:.2f}] Phased LSTM's steps to 90% "
                            f"(reached {s['phased reached']} / {s['lstm reached']}; faster: {s['phased faster']})."
                            for s in speed)
    return ClaimReport(verdict, detail, {"accuracy": pd.DataFrame(rows), "advantage": gaps,
                                         "convergence": pd.DataFrame(speed), "tuning": tuning},
                       {"learning_curves": _curves(history, claim.regimes)})


def _tuning(runs) -> pd.DataFrame:
    stage = run_stage(runs)
    part = runs[stage == "tuning"]
    if part.empty:
        return pd.DataFrame(columns=["regime", "variant", "chosen_lr", "trials", "best_objective"])
    return pd.DataFrame({"regime": part["claim_grid"].astype(str).str.removeprefix("tune-"),
                         "variant": param(part, "model.variant"), "chosen_lr": numeric(part, "train.lr"),
                         "trials": numeric(part, "tuning.trials"),
                         "best_objective": metric(part, "tuning_best")}).reset_index(drop=True)


def _curves(history: pd.DataFrame, order: tuple[str, ...]):
    regimes = [r for r in order if r in set(history["regime"])]
    fig, axes = grid_of_axes(len(regimes))
    for ax, regime in zip(axes, regimes):
        part = history[history["regime"] == regime]
        for i, (variant, p) in enumerate(part.groupby("variant")):
            agg = [(e, *stats.mean_interval(q["value"], bounds=stats.UNIT)) for e, q in p.groupby("epoch")]
            e, m, lo, hi = zip(*agg)
            band(ax, e, m, lo, hi, variant, color(variant, i))
        ax.axhline(0.9, color="grey", ls="--", lw=1, label="90%")
        ax.set_title(f"{regime} sampling", fontsize=10)
        ax.set_xlabel("epoch (5,000 sequences)")
        ax.set_ylabel("validation accuracy")
        ax.set_ylim(0.4, 1.01)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Frequency discrimination: validation accuracy per epoch")
    fig.tight_layout()
    return fig
