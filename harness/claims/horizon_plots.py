"""Figures of the horizon claim: probability of solving against lag with the fitted curve and
the 50% point, horizons against the claim, steps to solve against lag, gradient flow."""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.plotting import color, grid_of_axes, log2_axis, log2_bars, plt


def solve_probability(frame: pd.DataFrame, table: pd.DataFrame, fitted) -> "plt.Figure":
    cells = list(table["variant"])
    fig, axes = grid_of_axes(len(cells), ncols=4, size=(3.6, 3.0))
    for i, (ax, cell) in enumerate(zip(axes, cells)):
        part = frame[(frame.variant == cell) & (frame.ladder == "main")]
        row = table[table.variant == cell].iloc[0]
        observed = part.groupby("lag")["solved"].agg(["mean", "size"]).reset_index()
        ax.scatter(observed["lag"], observed["mean"], s=12 + 8 * observed["size"], color=color(cell, i),
                   alpha=0.8, label="fraction of seeds that solved")
        grid = np.geomspace(part["lag"].min(), part["lag"].max(), 100)
        curve = fitted(part, grid)
        if curve is not None:
            ax.plot(grid, curve, color=color(cell, i), lw=1.5, label="logistic fit")
        ax.axvspan(row["ci_low"], row["ci_high"], color="grey", alpha=0.15, lw=0, label="95% interval")
        ax.axvline(row["horizon"], color="black", lw=1, ls="--", label=f"horizon {row['text']}")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        check = frame[(frame.variant == cell) & (frame.ladder == "budget-x2")]
        if len(check):
            again = check.groupby("lag")["solved"].mean()
            ax.scatter(again.index, again.values, marker="x", s=25, color="black", alpha=0.7,
                       label="re-run with 2x budget")
        lags = sorted(set(part["lag"]))
        log2_axis(ax, lags, fontsize=7, rotation=90 if len(lags) > 8 else 0)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(cell, fontsize=10)
        ax.set_xlabel("lag (steps)")
        ax.set_ylabel("P(solved)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    fig.suptitle("Probability of solving delayed recall against lag (main ladder)", fontsize=12)
    fig.tight_layout()
    return fig


def horizon_bars(table: pd.DataFrame, claimed: dict) -> "plt.Figure":
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(table) + 1.6))
    for y, row in enumerate(table.to_dict("records")):
        for value, low, high, offset, alpha, label in (
                (row["horizon"], row["ci_low"], row["ci_high"], -0.17, 0.9, "budget"),
                (row["horizon_x2"], row["horizon_x2"], row["horizon_x2"], 0.17, 0.45, "2x budget")):
            if not np.isfinite(value):
                continue
            ax.barh(y + offset, value, height=0.32, color=color(row["variant"], y), alpha=alpha,
                    hatch="//" if (row["censored"] and label == "budget") else None)
            if label == "budget":
                ax.errorbar(value, y + offset, xerr=[[value - low], [high - value]], color="black", capsize=3, lw=1)
                ax.text(high * 1.08, y + offset, row["text"] + (" (budget-limited)" if row["budget_limited"] else ""),
                        va="center", fontsize=7)
            else:
                ax.text(value * 1.08, y + offset, f"2x budget: {row['text_x2']}", va="center", fontsize=6.5)
    for cell, value in claimed.items():
        ax.axvline(value, color=color(cell), ls="--", lw=1.2, label=f"claimed ~{value} ({cell})")
    top = float(np.nanmax(table[["ci_high", "horizon_x2"]].to_numpy(float)))
    log2_bars(ax, list(table["variant"]), top, lowest=2, room=5)
    ax.set_xlabel("horizon: lag with a 50% chance of solving (95% interval; pale: doubled budget; hatched: censored)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    ax.set_title("Measured memory horizon vs the claim")
    fig.tight_layout()
    return fig


def steps_to_solve(steps: pd.DataFrame) -> "plt.Figure":
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    for i, (cell, part) in enumerate(steps.groupby("variant")):
        part = part.dropna(subset=["median_steps_to_solve"]).sort_values("lag")
        if part.empty:
            continue
        c = color(cell, i)
        ax.plot(part["lag"], part["median_steps_to_solve"], marker="o", ms=4, color=c, label=cell)
        ax.fill_between(part["lag"], part["q25"], part["q75"], color=c, alpha=0.15, lw=0)
    budget = steps["step_budget"].max() if len(steps) else None
    if budget:
        ax.axhline(budget, color="grey", ls="--", lw=1, label=f"step budget ({budget})")
    log2_axis(ax, sorted(set(steps["lag"])), fontsize=7)
    ax.set_yscale("log")
    ax.set_xlabel("lag (steps)")
    ax.set_ylabel("steps to solve (median of solved seeds, IQR)")
    ax.set_title("The cost of memory: training steps until recall is solved")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


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
