"""The context claim's curve over training (protocol v2): one language-model run per (cell,
seed) probes its effective context at a geometric schedule of training tokens
(track.context_points: total/16 ... the end), so one run gives effective context and perplexity
against tokens; per cell the curve is classified as the horizon claim classifies its budget
curve (harness/analysis/budget_curve.py: the log-log slope with a bootstrap over seeds):
**grows** with training, **levels off** (the slope's interval within ±0.125 and every probe
within a factor √2 of the fitted line), or undetermined (a hump is named as one)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.analysis.budget_curve import STEP, seed_growth
from harness.analysis.plotting import color, plt
from harness.claims.columns import numeric

KINDS = {"wall": "levels off", "grows": "grows", "undetermined": "undetermined"}


def points(frame: pd.DataFrame, runs: pd.DataFrame, context) -> pd.DataFrame:
    """One row per (LM run, probe): cell, seed, step, training tokens, effective context (and
    whether it reached the window), the probe's full-context loss and perplexity."""
    lm = frame[(frame.grid == "lm") & (frame.outcome == "finished")]
    columns = ["run_id", "variant", "seed", "step", "tokens", "effective", "censored", "loss", "perplexity"]
    if lm.empty or context is None:
        return pd.DataFrame(columns=columns)
    ids = list(lm["run_id"])
    per_step = (numeric(runs, "train.batch_size") * numeric(runs, "task.length")).set_axis(runs["run_id"])
    merged = None
    for key, name in (("context_effective", "effective"), ("context_effective_censored", "censored"),
                      ("context_full_loss", "loss")):
        part = context.history(ids, key).rename(columns={"value": name})
        merged = part if merged is None else merged.merge(part, on=["run_id", "step"], how="left")
    merged = merged.merge(lm[["run_id", "variant", "seed"]], on="run_id")
    merged["tokens"] = merged["step"] * merged["run_id"].map(per_step)
    merged["censored"] = merged["censored"].fillna(0.0) > 0.5
    merged["perplexity"] = np.exp(merged["loss"])
    return merged[columns].sort_values(["variant", "seed", "step"]).reset_index(drop=True)


def over_training(points: pd.DataFrame, cells, window: float = math.nan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per (cell, probe): tokens, effective context over seeds with its interval,
    perplexity; one row per cell: the curve's slope and class). Probes are matched by step: the
    probes during training at the steps every seed reached (the schedule is the same in every
    run; one stopped early by the plateau rule reached fewer), then each run's end-of-training
    probe (the best-validation weights the verdict reads; its tokens: the median over seeds).
    window: the language models' context window, whose distance grid widens the intervals
    (context_report.on_grid)."""
    from harness.claims.context_report import geometric, on_grid

    rows, growth_rows = [], []
    for cell in cells:
        part = points[points.variant == cell]
        if part.empty:
            continue
        seeds = {int(s): p.sort_values("step").reset_index(drop=True) for s, p in part.groupby("seed")}
        common = sorted(set.intersection(*(set(p["step"].iloc[:-1]) for p in seeds.values())))
        picks = {s: [p.index[p["step"] == step][0] for step in common] + [len(p) - 1] for s, p in seeds.items()}

        def column(name):
            return {s: [seeds[s][name].iloc[i] for i in picks[s]] for s in seeds}

        effective, tokens_of, ppl_of, cens = column("effective"), column("tokens"), column("perplexity"), \
            column("censored")
        count = len(common) + 1
        tokens = [float(np.median([tokens_of[s][k] for s in seeds])) for k in range(count)]
        censored = [">=" if any(cens[s][k] for s in seeds) else "" for k in range(count)]
        for k in range(count):
            mean, low, high = on_grid(pd.Series([effective[s][k] for s in seeds]), window,
                                      pd.Series([bool(cens[s][k]) for s in seeds]))
            rows.append({"variant": cell, "probe": k + 1, "end": k == count - 1, "training_tokens": tokens[k],
                         "effective_context": mean, "ci_low": low, "ci_high": high, "censored": censored[k],
                         "perplexity": geometric(pd.Series([ppl_of[s][k] for s in seeds]))[0], "seeds": len(seeds)})
        if count >= 2 and len(seeds) >= 2:
            _, growth = seed_growth(tokens, effective, censored)
            kind = KINDS[growth.kind]
            text = f"{kind}: slope {growth.bound + ' ' if growth.bound else ''}{growth.slope:.2f} " \
                   f"[{growth.low:.2f}, {growth.high:.2f}] over {tokens[-1] / tokens[0]:.0f}x tokens"
            if growth.kind == "undetermined" and growth.spread > STEP:
                text += f"; no single trend: a probe lies {math.exp(growth.spread):.1f}x from the fitted line"
            growth_rows.append({"variant": cell, "slope": growth.slope, "slope_low": growth.low,
                                "slope_high": growth.high, "kind": kind, "bound": growth.bound, "growth_text": text,
                                "points": count, "first_tokens": tokens[0], "last_tokens": tokens[-1]})
        else:
            growth_rows.append({"variant": cell, "slope": math.nan, "slope_low": math.nan, "slope_high": math.nan,
                                "kind": "undetermined", "bound": "", "points": count,
                                "growth_text": "n/a (fewer than two probes or seeds)"})
    return pd.DataFrame(rows), pd.DataFrame(growth_rows)


def convergence(table: pd.DataFrame) -> dict[str, str]:
    """Per cell: how far its last point is from convergence, as the fall of its probe perplexity
    over the last doubling of training tokens."""
    out = {}
    for cell, part in table.groupby("variant", sort=False):
        part = part.sort_values("probe")
        if len(part) < 2:
            out[cell] = "one probe only"
            continue
        before, last = part["perplexity"].iloc[-2], part["perplexity"].iloc[-1]
        ratio = part["training_tokens"].iloc[-1] / part["training_tokens"].iloc[-2]
        fall = 100 * (before - last) / before
        out[cell] = (f"perplexity {last:.0f} at the last probe, {abs(fall):.1f}% {'below' if fall >= 0 else 'above'} "
                     f"the probe before it ({ratio:.1f}x fewer tokens)")
    return out


def figure(table: pd.DataFrame, claimed: dict, reference: int):
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    for i, (cell, part) in enumerate(table.groupby("variant", sort=False)):
        x, y = part["training_tokens"].to_numpy(float), part["effective_context"].to_numpy(float)
        c = color(cell, i)
        left.plot(x, y, marker="o", ms=4, color=c, label=cell)
        left.errorbar(x, y, yerr=[y - part["ci_low"], part["ci_high"] - y], fmt="none", color=c, capsize=2, lw=0.8)
        right.plot(x, part["perplexity"], marker="o", ms=4, color=c, label=cell)
    for cell, value in claimed.items():
        left.axhline(value, color=color(cell), ls=":", lw=1.2, label=f"claimed ~{value} ({cell})")
    left.axhline(reference, color="black", ls="--", lw=1, label=f"Khandelwal et al. 2018: ~{reference} (LSTM)")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("training tokens")
        ax.grid(alpha=0.3, which="both")
    left.set_yscale("log", base=2)
    left.set_ylabel("effective context (tokens; 95% interval over seeds)")
    left.set_title("Effective context against training")
    right.set_yscale("log")
    right.set_ylabel("perplexity at the probe positions")
    right.set_title("Perplexity against training")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig
