"""The `phased` claim's analysis: accuracy per regime and cell, the Phased - LSTM difference
with its Welch interval, learning curves."""
from __future__ import annotations

import math

import pandas as pd

from harness.analysis import stats
from harness.analysis.plotting import band, color, grid_of_axes
from harness.claims.base import ClaimReport, Verdict, difference_match, verdict_of_matches
from harness.claims.columns import metric, numeric, outcome, param


def analyse(claim, runs, context):
    """The claim's report from its runs (the neutral run table)."""
    frame = pd.DataFrame({"run_id": runs["run_id"], "regime": param(runs, "task.sampling"),
                          "variant": param(runs, "model.variant"), "seed": numeric(runs, "train.seed"),
                          "test": metric(runs, "test_accuracy"), "outcome": outcome(runs),
                          "per_epoch": claim.epoch / numeric(runs, "train.batch_size")})
    history = context.history(list(frame["run_id"]), "val_accuracy").merge(frame, on="run_id")
    history["epoch"] = history["step"] / history["per_epoch"]
    reach = history[history["value"] >= 0.9].groupby("run_id")["epoch"].min()
    frame["epochs_to_90"] = frame["run_id"].map(reach)
    rows, regimes = [], []
    for (regime, variant), part in frame.groupby(["regime", "variant"]):
        mean, lo, hi = stats.mean_interval(part["test"], bounds=stats.UNIT)
        reached = part["epochs_to_90"].dropna()
        paper = dict(zip(claim.compared, claim.paper[regime])).get(variant)
        rows.append({"regime": regime, "variant": variant, "seeds": len(part), "test_accuracy": mean,
                     "ci_low": lo, "ci_high": hi, "paper_accuracy": None if paper is None else paper / 100,
                     "reached_90": f"{len(reached)}/{len(part)}",
                     "median_epochs_to_90": float(reached.median()) if len(reached) else math.nan})
    for regime in claim.regimes:
        a, b = (frame[(frame.regime == regime) & (frame.variant == v)]["test"].dropna() for v in claim.compared)
        if len(a) and len(b):
            diff, lo, hi = stats.difference_interval(a, b)
            paper = (claim.paper[regime][0] - claim.paper[regime][1]) / 100
            regimes.append({"regime": regime, "phased - lstm": diff, "ci_low": lo, "ci_high": hi,
                            "paper gap": paper, "advantage": difference_match(lo, hi, paper)})
    gaps = pd.DataFrame(regimes)
    verdict = verdict_of_matches({g["regime"]: g["advantage"] for g in regimes}) if regimes else Verdict.UNTESTABLE
    detail = "; ".join(f"{g['regime']}: Phased LSTM - LSTM test accuracy = "
                       f"{stats.fmt_interval(g['phased - lstm'], g['ci_low'], g['ci_high'])} "
                       f"(paper {g['paper gap']:+.2f})" for g in regimes)
    return ClaimReport(verdict, detail, {"accuracy": pd.DataFrame(rows), "advantage": gaps},
                       {"learning_curves": _curves(history, claim.regimes)})


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
