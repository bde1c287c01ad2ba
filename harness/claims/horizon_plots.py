"""Figures of the horizon claim: accuracy vs lag, measured horizons, gradient flow."""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.plotting import band, color, grid_of_axes, plt


def accuracy_vs_lag(by_lag: pd.DataFrame, frame: pd.DataFrame):
    grids = list(dict.fromkeys(by_lag["grid"]))
    fig, axes = grid_of_axes(len(grids))
    for ax, grid in zip(axes, grids):
        part = by_lag[by_lag["grid"] == grid]
        for i, (variant, p) in enumerate(part.groupby("variant")):
            p = p.sort_values("length")
            band(ax, p["length"], p["accuracy"], p["ci_low"].clip(0, 1), p["ci_high"].clip(0, 1), variant,
                 color(variant, i))
        chance = part["chance"].iloc[0]
        ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
        ax.axhline(chance + 0.95 * (1 - chance), color="grey", ls="--", lw=1, label="solved")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(part["length"].unique()), [str(v) for v in sorted(part["length"].unique())])
        steps = frame.loc[frame["grid"] == grid, "steps"].iloc[0]
        ax.set_title(f"{grid} ({steps} steps/run)", fontsize=10)
        ax.set_xlabel("lag (steps)")
        ax.set_ylabel("test accuracy (mean, 95% CI)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="best")  # per panel: the grids compare different variants
    fig.suptitle("Accuracy vs lag per variant", fontsize=12)
    fig.tight_layout()
    return fig


def horizon_bars(horizons: pd.DataFrame, claimed: dict, settings) -> "plt.Figure":
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(settings) + 1.5))
    labels, y = [], 0
    for setting, srnn_grid, lstm_grid in settings:
        for variant, grid, offset in (("simple_rnn", srnn_grid, 0.18), ("lstm", lstm_grid, -0.18)):
            row = horizons[(horizons["grid"] == grid) & (horizons["variant"] == variant)]
            if row.empty:
                continue
            r = row.iloc[0]
            value = max(r["horizon"], 1)
            ax.barh(y + offset, value, height=0.34, color=color(variant), alpha=0.85,
                    label=variant if y == 0 else None, hatch="//" if r["censored"] else None)
            ax.errorbar(value, y + offset, xerr=[[value - max(r["ci_low"], 1)], [max(r["ci_high"], 1) - value]],
                        color="black", capsize=3, lw=1)
            h = r["horizon"]
            text = "none solved" if h == 0 else (f">= {h:g}" if r["censored"] else f"{h:g}")
            ax.text(max(r["ci_high"], value, 1) * 1.08, y + offset, text, va="center", fontsize=7)
        labels.append(setting)
        y += 1
    for variant, value in claimed.items():
        ax.axvline(value, color=color(variant), ls="--", lw=1.2, label=f"claimed ~{value} ({variant})")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log", base=2)
    ax.set_xlabel("measured horizon in steps: the largest lag most seeds solve (hatched: censored)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Measured memory horizon vs the claim")
    fig.tight_layout()
    return fig


def gradient_profiles(profiles: pd.DataFrame):
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
