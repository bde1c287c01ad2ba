"""Figures of the horizon claim: the horizon against the training budget, the cost of memory
(sequences to solve against lag, with fitted exponents), gradient flow."""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.plotting import color, plt


MARKERS = {"default": "o", "chrono": "s"}
STYLES = {"default": "-", "chrono": "--"}


def horizon_vs_budget(table: pd.DataFrame, claimed: dict, recipe: int) -> "plt.Figure":
    """L50 against the training budget (sequences), log-log, one line per (cell, initialisation),
    95% intervals as bars; a censored L50 (beyond the ladder) as an open triangle at its bound."""
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    for i, ((cell, init), part) in enumerate(table.groupby(["variant", "init"], sort=False)):
        part = part.sort_values("budget_sequences")
        c = color(cell, i)
        x, y = part["budget_sequences"].to_numpy(float), part["horizon"].to_numpy(float)
        ax.plot(x, y, color=c, ls=STYLES.get(init, "-"), marker=MARKERS.get(init, "o"), ms=4,
                label=f"{cell} ({init})")
        ax.errorbar(x, y, yerr=[y - part["ci_low"], part["ci_high"] - y], fmt="none", color=c, capsize=2, lw=0.8)
        for side, marker in ((">=", "^"), ("<", "v")):
            at = (part["censored"] == side).to_numpy()
            ax.scatter(x[at], y[at], marker=marker, s=50, facecolors="none", edgecolors=c)
    for cell, value in claimed.items():
        ax.axhline(value, color=color(cell), ls=":", lw=1.2, label=f"claimed ~{value} ({cell})")
    ax.axvline(recipe, color="black", ls="-.", lw=1, label=f"the recipe's budget ({recipe:,} sequences)")
    ax.set_xscale("log")
    top = float(np.nanmax(table["ci_high"].to_numpy(float))) if len(table) else 128.0
    ax.set_yscale("log", base=2)
    ticks = [2 ** k for k in range(1, 12) if 2 ** k <= 2 * max(top, max(claimed.values()))]
    ax.set_yticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training budget (sequences; a run with budget B is the first B of the largest run)")
    ax.set_ylabel("horizon L50 (lag with a 50% chance of solving)")
    ax.set_title("Memory horizon against the training budget (95% intervals;\ntriangles: beyond the ladder's longest or below its shortest lag)", fontsize=11)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def sequences_to_solve(steps: pd.DataFrame, exponents: pd.DataFrame, reference: dict) -> "plt.Figure":
    """The cost of memory: sequences to solve against lag, log-log, each (cell, initialisation)
    with its fitted exponent; the 1997 LSTM's numbers on the adding problem beside them."""
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    beta = {(r["variant"], r["init"]): r["beta"] for r in exponents.to_dict("records")}
    for i, ((cell, init), part) in enumerate(steps.groupby(["variant", "init"], sort=False)):
        part = part.dropna(subset=["median_sequences_to_solve"]).sort_values("lag")
        if part.empty:
            continue
        b = beta.get((cell, init), float("nan"))
        ax.plot(part["lag"], part["median_sequences_to_solve"], color=color(cell, i), ls=STYLES.get(init, "-"),
                marker=MARKERS.get(init, "o"), ms=4, label=f"{cell} ({init}): β = {b:.2f}")
    ax.scatter(list(reference), list(reference.values()), marker="x", s=40, color="black",
               label="LSTM 1997, adding problem (sequences to solve)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("lag (steps)")
    ax.set_ylabel("training sequences to solve (median of the seeds that solved)")
    ax.set_title("The cost of memory: sequences to solve ∝ lag^β")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def last_profiles(frame: pd.DataFrame, context) -> pd.DataFrame | None:
    """The last gradient-flow profile of seed 0 of every cell (its first initialisation) at the
    longest lag all of them ran."""
    part = frame[~frame["pilot"] & (frame.seed == 0) & (frame.outcome == "finished")]
    part = part[part.groupby("variant")["init"].transform("first") == part["init"]]
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


def gradient_profiles(profiles: pd.DataFrame) -> "plt.Figure":
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for i, (variant, p) in enumerate(profiles.groupby("variant")):
        p = p.sort_values("distance")
        ax.plot(p["distance"], np.clip(p["grad_h_norm"] / p["grad_h_norm"].iloc[0], 1e-30, None),
                label=variant, color=color(variant, i))
    ax.axhline(1e-3, color="grey", ls="--", lw=1, label="gradient_horizon threshold (1e-3)")
    ax.set_yscale("log")
    ax.set_xlabel("distance from the loss (steps back in time)")
    ax.set_ylabel(r"$\|\partial L/\partial h_t\|$ / its value at the loss step")
    lag = int(profiles["length"].iloc[0])
    ax.set_title(f"Gradient flow through time after training (recall, noise, lag {lag}, seed 0)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
