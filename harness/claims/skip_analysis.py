"""The `skip` claim's analysis: error and update fraction per cell and λ, the frontier figure."""
from __future__ import annotations

import pandas as pd

from harness.analysis import stats
from harness.analysis.plotting import color, plt
from harness.claims.base import ClaimReport, Verdict
from harness.claims.columns import metric, numeric, param, task_of, run_stage


def analyse(claim, runs, context):
    """The claim's report from its runs (the neutral run table)."""
    stage = run_stage(runs)
    tuning, runs = runs[stage == "tuning"], runs[stage != "tuning"]
    frame = pd.DataFrame({
        "variant": param(runs, "model.variant"), "length": numeric(runs, "task.length").astype(int),
        "budget_weight": numeric(runs, "cell.budget_weight").fillna(0.0), "seed": numeric(runs, "train.seed"),
        "lr": numeric(runs, "train.lr"), "mse": metric(runs, "test_mse"),
        "solved": [claim.solved({"solved": v}) for v in metric(runs, "solved", 0.0)],
        "steps_to_solve": metric(runs, "steps_to_solve"), "updates": metric(runs, "update_mean", 1.0)})
    threshold = task_of(runs.iloc[0]).success().threshold
    rows = []
    for (length, variant, lam), part in frame.groupby(["length", "variant", "budget_weight"]):
        mse = stats.mean_interval(part["mse"], bounds=stats.NONNEGATIVE)
        upd = stats.mean_interval(part["updates"], bounds=stats.UNIT)
        solved = part[part["solved"]]
        rows.append({"length": length, "variant": variant, "budget_weight": lam, "lr": part["lr"].iloc[0],
                     "seeds": len(part), "solved": len(solved), "test_mse": mse[0], "mse_low": mse[1],
                     "mse_high": mse[2], "updates": upd[0], "updates_low": upd[1], "updates_high": upd[2],
                     "median_steps_to_solve": solved["steps_to_solve"].median() if len(solved) else float("nan")})
    table = pd.DataFrame(rows)
    verdicts, detail = {}, []
    for variant in claim.skip_cells:
        part = table[(table.variant == variant) & (table.length == table.length.min())]
        ok = part[part["solved"] * 2 > part["seeds"]]
        if part.empty:
            continue
        if ok.empty:
            verdicts[variant] = Verdict.NOT_REPRODUCED
            detail.append(f"{variant}: no λ solved T = {part.length.min()} within "
                          f"{int(numeric(runs, 'train.steps').max())} steps")
            continue
        best = ok.sort_values("updates").iloc[0]
        verdicts[variant] = Verdict.REPRODUCED if best["updates"] <= claim.few_updates else Verdict.PARTLY
        detail.append(f"{variant}: solved T = {best['length']} with {best['updates']:.1%} of updates at "
                      f"λ = {best['budget_weight']:g} in a median {best['median_steps_to_solve']:.0f} steps "
                      f"(paper {claim.paper_updates[variant]:.1%})")
    verdict = verdicts.get("skip_lstm", Verdict.UNTESTABLE)
    if "skip_lstm" not in verdicts:
        detail.append("Skip LSTM was not run: the claim is about it")
    tables = {"frontier": table}
    if len(tuning):
        tables["tuning"] = pd.DataFrame({"variant": param(tuning, "model.variant"),
                                         "chosen_lr": numeric(tuning, "train.lr"),
                                         "trials": numeric(tuning, "tuning.trials"),
                                         "best_solve_cost": metric(tuning, "tuning_best")}).reset_index(drop=True)
    return ClaimReport(verdict, "; ".join(detail) + ".", tables,
                       {"accuracy_vs_updates": _frontier(table, threshold, claim.paper_updates)})


def _frontier(table: pd.DataFrame, threshold: float, paper_updates: dict[str, float]):
    lengths = sorted(table["length"].unique())
    fig, axes = plt.subplots(1, len(lengths), figsize=(5.2 * len(lengths), 4), squeeze=False)
    for ax, length in zip(axes[0], lengths):
        part = table[table["length"] == length]
        for i, (variant, p) in enumerate(part.groupby("variant")):
            p = p.sort_values("updates")
            ax.errorbar(p["updates"], p["test_mse"], yerr=[(p["test_mse"] - p["mse_low"]).clip(lower=0),
                        (p["mse_high"] - p["test_mse"]).clip(lower=0)], fmt="o-", ms=5, capsize=3,
                        color=color(variant, i), label=variant)
            for r in p.itertuples():
                if variant.startswith("skip"):
                    ax.annotate(f"λ={r.budget_weight:g}", (r.updates, r.test_mse), fontsize=6,
                                xytext=(3, 3), textcoords="offset points")
        ax.axhline(threshold, color="grey", ls="--", lw=1, label="solved")
        for variant, value in paper_updates.items():
            ax.axvline(value, color=color(variant), ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_xlim(0, 1.05)
        ax.set_xlabel("fraction of state updates")
        ax.set_ylabel("test MSE (mean, 95% CI)")
        ax.set_title(f"adding, T = {length}")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Skip RNN: accuracy vs updates used (dotted: the paper's update fractions)")
    fig.tight_layout()
    return fig
