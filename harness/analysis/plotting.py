"""The one plotting stack (matplotlib, Agg): claim figures and the per-run gradient-flow figure,
one palette and one look for every figure the harness draws."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"simple_rnn": "#c44e52", "lstm": "#4c72b0", "gru": "#55a868", "peephole_lstm": "#8172b3",
          "phased_lstm": "#937860", "skip_lstm": "#da8bc3", "skip_gru": "#8c8c8c"}


def color(name: str, index: int = 0) -> str:
    return COLORS.get(name, plt.rcParams["axes.prop_cycle"].by_key()["color"][index % 10])


def band(ax, x, mean, low, high, label: str, c: str, marker: str = "o"):
    """A mean line with a shaded interval band."""
    ax.plot(x, mean, marker=marker, ms=4, color=c, label=label)
    ax.fill_between(x, low, high, color=c, alpha=0.18, linewidth=0)


def grid_of_axes(count: int, ncols: int = 3, size=(4.6, 3.4)):
    nrows = (count + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, min(ncols, count), figsize=(size[0] * min(ncols, count), size[1] * nrows),
                             squeeze=False)
    flat = axes.flatten()
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def log2_bars(ax, labels: list[str], top: float, lowest: int = 1, room: float = 4.0) -> None:
    """Axes for horizontal bars of lengths in steps or tokens: one row per label (first on
    top), a log2 x axis with power-of-two ticks from `lowest` to twice `top`, and `room` x
    `top` of space to the right for the labels written beside the bars."""
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    log2_axis(ax, [2 ** k for k in range(lowest.bit_length() - 1, 12) if 2 ** k <= 2 * top])
    ax.set_xlim(right=top * room)


def log2_axis(ax, ticks, **label_style) -> None:
    """A log2 x axis labelled at exactly `ticks` (lags, distances: the values the runs used)."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ticks), [str(t) for t in ticks], **label_style)
    ax.minorticks_off()



def gradient_flow(rows: list[dict], title: str, threshold: float):
    """Gradient norm against distance from the loss, one line per probed training step, in two
    log-scale panels (‖∂L/∂h_t‖ through the recurrence, ‖∂L/∂x_t‖ at the inputs). `rows`: dicts
    with step, distance, grad_h_norm, grad_x_norm (harness.training.probes.profile_rows). The
    dashed line is `threshold` x the last probe's ‖∂L/∂h‖ at the loss step (the gradient
    horizon's cut-off). Returns the matplotlib Figure (the caller logs and closes it)."""
    steps = sorted({r["step"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(9.2, 3.6))
    for ax, (column, label) in zip(axes, (("grad_h_norm", "‖∂L/∂h_t‖"), ("grad_x_norm", "‖∂L/∂x_t‖"))):
        for i, step in enumerate(steps):
            part = sorted((r["distance"], r[column]) for r in rows if r["step"] == step)
            ax.plot([d for d, _ in part], [v for _, v in part], lw=1.4, label=f"step {step}",
                    color=plt.rcParams["axes.prop_cycle"].by_key()["color"][i % 10])
        if column == "grad_h_norm":
            last = sorted((r["distance"], r[column]) for r in rows if r["step"] == steps[-1])
            if last and last[0][1] > 0:
                ax.axhline(threshold * last[0][1], color="0.4", ls="--", lw=1,
                           label=f"{threshold:g} × norm at the loss step")
        if any(r[column] > 0 for r in rows):
            ax.set_yscale("log")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("distance from the last step (steps back)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def comparison(profiles: dict[str, list[tuple[int, float]]], curves: dict[str, dict[str, list[tuple[int, float]]]]):
    """One figure comparing runs: the last gradient probe of each (‖∂L/∂h_t‖ against distance,
    log scale) and each learning curve it has (metric -> [(step, value)]), one panel per metric.
    `profiles`/`curves` are keyed by the run's label. Returns the Figure (the caller saves it)."""
    metrics = sorted({m for per_run in curves.values() for m in per_run})
    fig, axes = grid_of_axes(1 + len(metrics), ncols=3)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labels = sorted(set(profiles) | set(curves))
    ax = axes[0]
    for i, label in enumerate(labels):
        points = profiles.get(label)
        if points:
            ax.plot([d for d, _ in points], [v for _, v in points], color=palette[i % 10], lw=1.4, label=label)
    if any(v > 0 for points in profiles.values() for _, v in points):
        ax.set_yscale("log")
    ax.set_title("gradient flow (last probe)", fontsize=10)
    ax.set_xlabel("distance from the last step (steps back)")
    ax.set_ylabel("‖∂L/∂h_t‖")
    for ax, metric in zip(axes[1:], metrics):
        for i, label in enumerate(labels):
            points = curves.get(label, {}).get(metric)
            if points:
                ax.plot([s for s, _ in points], [v for _, v in points], color=palette[i % 10], lw=1.4, label=label)
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("training step")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
