"""The `imdb` claim's analysis: accuracy per cell with intervals, the comparison with the claimed
numbers, learning curves."""
from __future__ import annotations

import pandas as pd

from harness.analysis import stats
from harness.analysis.plotting import band, color, plt
from harness.claims.base import ClaimReport, Verdict
from harness.claims.columns import flag, metric, numeric, outcome, param


def analyse(claim, runs, context):
    """The claim's report from its runs (the neutral run table)."""
    frame = pd.DataFrame({
        "run_id": runs["run_id"], "variant": param(runs, "model.variant"),
        "bidirectional": flag(runs, "model.bidirectional"),
        "seed": numeric(runs, "train.seed"), "epochs": numeric(runs, "train.epochs"),
        "params": numeric(runs, "trainable_params"), "test": metric(runs, "test_accuracy"),
        "final_val": metric(runs, "val_accuracy"), "outcome": outcome(runs), "seconds": runs["seconds"]})
    frame["label"] = frame["variant"] + frame["bidirectional"].map({True: " (bidirectional)", False: ""})
    history = context.history(list(frame["run_id"]), "val_accuracy")
    best = history.groupby("run_id")["value"].max()
    frame["best_val"] = frame["run_id"].map(best)
    rows = []
    for label, part in frame.groupby("label"):
        row = {"variant": label, "parameters": int(part["params"].iloc[0]), "seeds": len(part),
               "epochs": int(part["epochs"].iloc[0]),
               "epoch_time_s": round(float((part["seconds"] / part["epochs"]).mean()), 1)}
        for key in ("best_val", "final_val", "test"):
            mean, lo, hi = stats.mean_interval(part[key], bounds=stats.UNIT)
            row.update({key: mean, f"{key}_low": lo, f"{key}_high": hi})
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("test", ascending=False)
    comparison, verdict, detail = _compare(table, claim)
    return ClaimReport(verdict, detail, {"accuracy": table, "comparison": comparison},
                       {"learning_curves": _curves(frame, history, claim.chollet_val_peak)})


def _compare(table: pd.DataFrame, claim):
    claimed, peaks, match = claim.claimed_test, claim.chollet_val_peak, claim.match
    rows, matches = [], {}
    for variant in ("lstm", "simple_rnn"):
        found = table[table["variant"] == variant]
        if found.empty:
            continue
        r = found.iloc[0]
        matches[variant] = abs(r["test"] - claimed[variant]) <= match
        rows.append({"variant": variant, "claimed test": claimed[variant],
                     "measured test": stats.fmt_interval(r["test"], r["test_low"], r["test_high"]),
                     "within 2 points": "yes" if matches[variant] else "no",
                     "Chollet val peak": peaks[variant],
                     "measured best val": stats.fmt_interval(r["best_val"], r["best_val_low"], r["best_val_high"])})
    count = sum(matches.values())
    verdict = (Verdict.UNTESTABLE if len(matches) < 2 else
               Verdict.REPRODUCED if count == 2 else Verdict.NOT_REPRODUCED if count == 0 else Verdict.PARTLY)
    detail = "; ".join(f"{r['variant']}: test {r['measured test']} vs claimed {r['claimed test']}" for r in rows)
    if len(matches) < 2:
        detail = (detail + "; " if detail else "") + "LSTM and SimpleRNN are both needed to test the claim"
    epochs = int(table["epochs"].iloc[0]) if len(table) else 0
    return pd.DataFrame(rows), verdict, f"{detail} (after {epochs} epochs)."


def _curves(frame: pd.DataFrame, history: pd.DataFrame, peaks: dict[str, float]):
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    merged = history.merge(frame[["run_id", "label", "epochs"]], on="run_id")
    for i, (label, part) in enumerate(merged.groupby("label")):
        per_epoch = part.groupby("run_id")["step"].transform(lambda s: s.rank(method="first"))
        part = part.assign(epoch=per_epoch)
        agg = [(e, *stats.mean_interval(p["value"], bounds=stats.UNIT)) for e, p in part.groupby("epoch")]
        e, m, lo, hi = zip(*agg)
        band(ax, e, m, lo, hi, label, color(label.split(" ")[0], i))
    for variant, value in peaks.items():
        ax.axhline(value, color=color(variant), ls=":", lw=1, label=f"Chollet val peak ({variant})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (mean, 95% CI)")
    ax.set_title("IMDB, Keras recipe: validation accuracy per epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
