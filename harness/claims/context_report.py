"""The context claim's numbers and figures: effective contexts with intervals over seeds,
perplexities, and the ablation curves of the language models and classifiers (at the end of
training; the curve over training is context_training.py's)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from harness.analysis import stats
from harness.claims.columns import metric, numeric, outcome, param, task_of
from harness.analysis.plotting import color, log2_axis, log2_bars, plt


def frame(runs: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "run_id": runs["run_id"], "grid": runs["claim_grid"], "variant": param(runs, "model.variant"),
        "seed": numeric(runs, "train.seed"), "outcome": outcome(runs), "tokens": numeric(runs, "task.train_tokens")
        if "task.train_tokens" in runs else np.nan,
        "effective": metric(runs, "context_effective"), "censored": metric(runs, "context_effective_censored", 0.0),
        "order": metric(runs, "context_order"), "content": metric(runs, "context_content"),
        "perplexity": metric(runs, "test_perplexity"), "accuracy": metric(runs, "test_accuracy"),
        "seconds": runs["seconds"]}).reset_index(drop=True)


def curves(frame: pd.DataFrame, context) -> pd.DataFrame:
    """Every run's ablation curve (context_curve.csv), with its run's grid, cell and seed."""
    parts = []
    for row in frame[frame["outcome"] == "finished"].itertuples():
        if context is None:
            break
        try:
            curve = pd.read_csv(context.artifact(row.run_id, "context_curve.csv"))
        except Exception:  # a run without the probe's artifact: left out of the curves
            continue
        if "step" in curve:  # probes during training (track.context_points): the tables read the run's last
            curve = curve[curve["step"] == curve["step"].max()].drop(columns="step")
        parts.append(curve.assign(grid=row.grid, variant=row.variant, seed=row.seed))
    columns = ["mode", "distance", "metric", "value", "sem", "grid", "variant", "seed"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def geometric(values: pd.Series) -> tuple[float, float, float]:
    """Geometric mean of positive values with a 95% t-interval of their logs."""
    v = values.dropna()
    v = v[v > 0]
    if v.empty:
        return math.nan, math.nan, math.nan
    mean, low, high = stats.mean_interval(np.log(v.to_numpy(float)))
    return math.exp(mean), math.exp(low), math.exp(high)


def on_grid(values: pd.Series, window: float, censored: pd.Series | None = None) -> tuple[float, float, float]:
    """geometric(), its interval widened to the probe's distance grid. A run's effective context
    d is the smallest grid distance within 1% of the full-window loss, so its true value lies in
    (d', d], d' the grid point below d (harness/training/context.py: distances): the interval
    reaches down to the geometric mean of the d' and up to that of the d, however alike the seeds.
    A censored value (d = the window W: at least W) has no point below it."""
    mean, low, high = geometric(values)
    if not math.isfinite(mean) or not math.isfinite(window):
        return mean, low, high
    from harness.training.context import distances

    grid = distances(int(window))
    flags = (censored if censored is not None else pd.Series(False, index=values.index)).reindex(values.index)
    kept = [(float(d), bool(c)) for d, c in zip(values, flags.fillna(False)) if d == d and d > 0]
    below = [d if c else max((g for g in grid if g < d), default=d) for d, c in kept]
    return mean, min(low, math.exp(np.mean(np.log(below)))), max(high, mean)


def _text(mean: float, low: float, high: float, censored: int, n: int) -> str:
    if not math.isfinite(mean):
        return "n/a"
    head = (">= " if censored == n and n else "") + f"{mean:.0f}"
    return head if low == high else f"{head} [{low:.0f}, {high:.0f}]"


def window(curves: pd.DataFrame, grid: str) -> float:
    """The context window the runs of `grid` read (their full-context distance); nan without curves."""
    return float(curves.loc[(curves["mode"] == "full") & (curves["grid"] == grid), "distance"].max())


def effective_table(frame: pd.DataFrame, cells, curves: pd.DataFrame) -> pd.DataFrame:
    lm_window, clf_window = window(curves, "lm"), window(curves, "classifier")
    rows = []
    for cell in cells:
        lm = frame[(frame.grid == "lm") & (frame.variant == cell)]
        clf = frame[(frame.grid == "classifier") & (frame.variant == cell)]
        if lm.empty:
            continue
        m, lo, hi = on_grid(lm["effective"], lm_window, lm["censored"] > 0.5)
        censored = int(lm["censored"].sum())
        om, olo, ohi = on_grid(lm["order"], lm_window)
        cm, clo, chi = on_grid(clf["effective"], clf_window, clf["censored"] > 0.5) if len(clf) else (math.nan,) * 3
        rows.append({"variant": cell, "lm_effective": m, "lm_low": lo, "lm_high": hi,
                     "lm_censored": censored == len(lm), "lm_text": _text(m, lo, hi, censored, len(lm)),
                     "order_context": om, "order_text": _text(om, olo, ohi, 0, len(lm)),
                     "content_context": geometric(lm["content"])[0], "seeds": len(lm),
                     "classifier_effective": cm, "classifier_text": _text(cm, clo, chi, int(clf["censored"].sum()),
                                                                          len(clf)),
                     "lm_window": lm_window, "classifier_window": clf_window})
    return pd.DataFrame(rows)


def perplexity_table(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    lm_runs = runs[runs["claim_grid"] == "lm"]
    unigram = math.nan
    if len(lm_runs):  # logged by the runs since baseline_* metrics exist; older runs rebuild the task
        logged = metric(lm_runs, "baseline_perplexity").dropna()
        unigram = float(logged.iloc[0]) if len(logged) else task_of(lm_runs.iloc[0]).baseline()["perplexity"]
    for (grid, cell), part in frame[frame.grid == "lm"].groupby(["grid", "variant"]):
        mean, lo, hi = stats.mean_interval(part["perplexity"], bounds=stats.NONNEGATIVE)
        rows.append({"grid": grid, "variant": cell, "seeds": len(part),
                     "test_perplexity": mean, "ci_low": lo, "ci_high": hi, "unigram_perplexity": unigram,
                     "minutes_per_run": part["seconds"].mean() / 60})
    for cell, part in frame[frame.grid == "classifier"].groupby("variant"):
        mean, lo, hi = stats.mean_interval(part["accuracy"], bounds=stats.UNIT)
        rows.append({"grid": "classifier", "variant": cell, "seeds": len(part), "test_accuracy": mean,
                     "ci_low": lo, "ci_high": hi, "minutes_per_run": part["seconds"].mean() / 60})
    return pd.DataFrame(rows)


def curve_table(curves: pd.DataFrame, grid: str) -> pd.DataFrame:
    """Mean over seeds of every (cell, mode, d, metric) of one grid's ablation curves."""
    part = curves[curves["grid"] == grid]
    if part.empty:
        return pd.DataFrame(columns=["variant", "mode", "distance", "metric", "value", "seeds"])
    return (part.groupby(["variant", "mode", "distance", "metric"])["value"].agg(["mean", "count"])
            .reset_index().rename(columns={"mean": "value", "count": "seeds"}))


def khandelwal_table(reference: dict) -> pd.DataFrame:
    return pd.DataFrame([{"measure": k, "tokens": v, "source": "Khandelwal et al. 2018 (AWD-LSTM; PTB, WikiText-2)"}
                         for k, v in reference.items()])


def lm_figure(curves: pd.DataFrame):
    table = curve_table(curves, "lm")
    table = table[table["metric"] == "loss"]
    modes = [m for m in ("drop", "shuffle", "replace") if m in set(table["mode"])]
    fig, axes = plt.subplots(1, max(1, len(modes)), figsize=(4.8 * max(1, len(modes)), 3.8), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for i, (cell, part) in enumerate(table.groupby("variant")):
            full = part[part["mode"] == "full"]["value"].mean()
            p = part[part["mode"] == mode].sort_values("distance")
            ax.plot(p["distance"], 100 * (p["value"] / full - 1), marker="o", ms=3, color=color(cell, i), label=cell)
        ax.axhline(1.0, color="grey", ls="--", lw=1, label="+1% (effective context)")
        log2_axis(ax, [t for t in (1, 4, 16, 64, 256) if t <= table["distance"].max()])
        ax.set_yscale("symlog", linthresh=1)
        ax.set_xlabel("d: tokens kept intact before the target")
        ax.set_ylabel("loss increase over the full window (%)")
        ax.set_title({"drop": "context cut to the last d tokens", "shuffle": "tokens beyond d shuffled",
                      "replace": "tokens beyond d replaced"}[mode], fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("IMDB language models: how much context is used (mean over seeds)")
    fig.tight_layout()
    return fig


def classifier_figure(curves: pd.DataFrame):
    table = curve_table(curves, "classifier")
    table = table[table["metric"] == "accuracy"]
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.8), squeeze=False)
    for ax, mode in zip(axes[0], ("drop", "replace")):
        for i, (cell, part) in enumerate(table.groupby("variant")):
            p = part[part["mode"] == mode].sort_values("distance")
            ax.plot(p["distance"], p["value"], marker="o", ms=3, color=color(cell, i), label=cell)
            full = part[part["mode"] == "full"]["value"].mean()
            ax.axhline(full, color=color(cell, i), ls=":", lw=1)
        log2_axis(ax, [t for t in (1, 4, 16, 64, 256) if t <= table["distance"].max()])
        ax.set_xlabel("d: last words of the review kept intact")
        ax.set_ylabel("test accuracy")
        ax.set_title("only the last d words" if mode == "drop" else "words beyond d replaced", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("IMDB classifiers (Keras recipe): how much of a review is used (dotted: the whole review)")
    fig.tight_layout()
    return fig


def bars(table: pd.DataFrame, claimed: dict, reference: dict):
    fig, ax = plt.subplots(figsize=(8.4, 0.9 * len(table) + 2.2))
    kinds = (("lm_effective", "context cut (drop): effective context", 1.0, -0.27),
             ("order_context", "tokens shuffled: word order matters within", 0.55, 0.0),
             ("content_context", "tokens replaced: content matters within", 0.3, 0.27))
    for y, row in enumerate(table.to_dict("records")):
        c = color(row["variant"], y)
        for key, label, alpha, offset in kinds:
            value = row[key]
            if not math.isfinite(value):
                continue
            ax.barh(y + offset, value, height=0.25, color=c, alpha=alpha,
                    hatch="//" if (key == "lm_effective" and row["lm_censored"]) else None,
                    label=label if y == 0 else None)
        ax.errorbar(row["lm_effective"], y - 0.27, xerr=[[row["lm_effective"] - row["lm_low"]],
                                                         [row["lm_high"] - row["lm_effective"]]], color="black",
                    capsize=3, lw=1)
        ax.text(max(row["lm_high"], row["lm_effective"]) * 1.1, y - 0.27, row["lm_text"], va="center", fontsize=7)
    for cell, value in claimed.items():
        ax.axvline(value, color=color(cell), ls="--", lw=1.2, label=f"claimed ~{value} ({cell})")
    for (name, value), style in zip(reference.items(), itertools.cycle((":", "-.", (0, (1, 3)), (0, (5, 1, 1, 1))))):
        ax.axvline(value, color="black", ls=style, lw=1, label=f"Khandelwal 2018: {name} ~{value}")
    # the axis reaches every marked value (the claims and the paper's ~200), not only the bars
    marked = [v / 1.5 for v in (*claimed.values(), *reference.values())]
    top = float(np.nanmax([*table[["lm_high", "lm_effective"]].to_numpy(float).ravel(), *marked, 1.0]))
    log2_bars(ax, list(table["variant"]), top, lowest=1, room=4)
    ax.set_xlim(left=0.8)
    ax.set_xlabel("tokens (drop: 95% interval over seeds; hatched: the whole window, censored)")
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    ax.set_title("How much context IMDB language models use, vs the claim")
    fig.tight_layout()
    return fig


def notes(table: pd.DataFrame, perplexity: pd.DataFrame) -> list[str]:
    """What the numbers need beside them: a drop curve whose tail is the state warming up from
    zero rather than the use of distant words, and how trained the language models are."""
    out = []
    for row in table.to_dict("records"):
        content = row["content_context"]
        if math.isfinite(content) and content * 4 < row["lm_effective"]:
            out.append(f"{row['variant']}: cutting the context costs more than 1% until d = {row['lm_text']}, but "
                       f"replacing the words beyond d by random ones of the same count costs less than 1% from "
                       f"d = {content:.0f} on (order: {row['order_text']}): the long tail of its drop curve is the "
                       "state warming up from zero over many tokens, not the use of what those tokens say.")
    lm = perplexity[perplexity["grid"] == "lm"] if len(perplexity) else perplexity
    if len(lm):
        spread = ", ".join(f"{r['variant']} {r['test_perplexity']:.0f}" for r in lm.to_dict("records"))
        out.append(f"Test perplexities at the end of training: {spread} (unigram model "
                   f"{lm['unigram_perplexity'].iloc[0]:.0f}); Khandelwal et al.'s models were trained to convergence "
                   "on PTB and WikiText-2: the curve over training shows how far from that these runs are.")
    return out
