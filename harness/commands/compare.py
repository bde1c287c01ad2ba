"""Compare runs: where their configurations differ, their metrics side by side, and one figure
overlaying their gradient-flow profiles and learning curves.

examples:
  python -m harness compare 3f2a9c 81d0be                  # run IDs or unique prefixes
  python -m harness compare 3f2a9c 81d0be 5c77e1 --out lstm-vs-gru.png --tracking-uri sqlite:///runs.db
  python -m harness compare 3f2a9c 81d0be --json

The figure (default ./compare-<first IDs>.png) has the last gradient probe of every run that
recorded one (gradient_flow.csv) and one panel per learning-curve metric the runs logged
(train_loss and the validation metrics).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from harness.errors import UsageError

CURVES = ("train_loss",)  # besides every val_* metric


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", nargs="+", help="two or more run IDs (or unique prefixes of them)")
    parser.add_argument("--tracking-uri", default="", metavar="URI", help="MLflow store (default ./mlflow.db)")
    parser.add_argument("--out", metavar="FILE", help="the figure (PNG or SVG; default ./compare-<IDs>.png)")
    parser.add_argument("--json", action="store_true", help="print the differences and metrics as JSON")


def differences(records) -> dict[str, list]:
    """Config fields (params) whose values are not the same in every run: field -> values."""
    keys = sorted({k for r in records for k in r.params})
    return {k: [r.params.get(k) for r in records] for k in keys if len({r.params.get(k) for r in records}) > 1}


def metrics(records) -> dict[str, list]:
    keys = sorted({k for r in records for k in r.metrics})
    return {k: [r.metrics.get(k) for r in records] for k in keys}


def profile(runs, run_id: str) -> list[tuple[int, float]]:
    """The last probe of a run's gradient_flow.csv: [(distance, ‖∂L/∂h‖)] (empty without one)."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        try:
            frame = pd.read_csv(runs.artifact(run_id, "gradient_flow.csv", tmp))
        except Exception:  # noqa: BLE001 (no probe recorded: the run has no profile to show)
            return []
    last = frame[frame["step"] == frame["step"].max()].sort_values("distance")
    return list(zip(last["distance"], last["grad_h_norm"]))


def main(args) -> int:
    from tabulate import tabulate

    from harness.outdirs import make_dirs
    from harness.tracking import open_runs
    from harness.tracking.lookup import find

    if len(args.run) < 2:
        raise UsageError("compare needs at least two runs")
    runs = open_runs(args.tracking_uri)
    found = find(runs, args.run)
    records = [r for _, r in found]
    if len({r.run_id for r in records}) < len(records):
        raise UsageError("the same run is named twice")
    labels = [f"{r.run_id[:8]} {r.params.get('model.variant', '')}".strip() for r in records]
    diff, values = differences(records), metrics(records)
    if args.json:
        print(json.dumps({"runs": [{"run_id": r.run_id, "experiment": e, "outcome": str(r.outcome)}
                                   for e, r in found], "config": diff, "metrics": values}, default=str))
    else:
        print(tabulate([[e, r.run_id, str(r.outcome)] for e, r in found], headers=["experiment", "run", "outcome"]))
        print("\nconfiguration that differs" + ("" if diff else ": none"))
        if diff:
            print(tabulate([[k, *v] for k, v in diff.items()], headers=["field", *labels]))
        print("\nmetrics (last value)")
        print(tabulate([[k, *("" if x is None else x for x in v)] for k, v in values.items()],
                       headers=["metric", *labels], floatfmt=".4g"))
    out = Path(args.out or f"compare-{'-'.join(r.run_id[:8] for r in records[:3])}.png")
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UsageError(f"--out {out}: the figure must be .png, .svg or .pdf")
    make_dirs((out.parent if str(out.parent) else Path("."), "--out"))
    from harness.analysis import plotting

    curve_keys = [k for k in values if k in CURVES or k.startswith("val_")]
    history = {k: runs.history([r.run_id for r in records], k) for k in curve_keys}
    curves = {label: {k: [(int(s), float(v)) for s, v in zip(h[h.run_id == r.run_id]["step"],
                                                             h[h.run_id == r.run_id]["value"])]
                      for k, h in history.items()} for label, r in zip(labels, records)}
    profiles = {label: profile(runs, r.run_id) for label, r in zip(labels, records)}
    figure = plotting.comparison(profiles, curves)
    figure.savefig(out, dpi=110)
    plotting.plt.close(figure)
    print(f"figure: {out}", file=sys.stderr)
    return 0
