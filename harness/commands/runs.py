"""List a store's runs as the neutral run table: one row per run, config fields, metrics, tags.

examples:
  python -m harness runs                                   # every run of every experiment
  python -m harness runs --experiment recall --where model.variant=lstm --where test_accuracy>0.9
  python -m harness runs --experiment claim-horizon --columns run_id,model.variant,task.length,solved
  python -m harness runs --json                            # machine output, one object per run

Columns are named as for --set (`model.variant`, `train.seed`), metrics by their name
(`test_accuracy`), tags by theirs (`claim`, `fingerprint`); `--columns all` shows every one.
`--where` takes COLUMN OP VALUE with OP one of = != < <= > >= (numbers compare as numbers).
In --json, a missing value is null and an infinite one the string "inf" or "-inf".
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys

from harness.errors import UsageError

DEFAULT = ("run_id", "experiment", "outcome", "model.variant", "task.name", "train.seed", "seconds")
WHERE = re.compile(r"^\s*([^<>=!\s]+)\s*(<=|>=|!=|=|<|>)\s*(.*?)\s*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", default="", metavar="URI", help="MLflow store (default ./mlflow.db)")
    parser.add_argument("--experiment", action="append", metavar="NAME", help="only these experiments (default: all)")
    parser.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                        help="keep runs whose column compares so (OP: = != < <= > >=); repeatable, all must hold")
    parser.add_argument("--columns", metavar="A,B,...", help="columns to show (default: a summary with the "
                        "test metrics; 'all': every column)")
    parser.add_argument("--sort", metavar="COLUMN", help="sort by this column (default: newest first)")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N runs")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per run")


def _value(text: str, column):
    """The --where value in the column's kind (number, boolean, text)."""
    if column.dtype == bool or set(column.dropna().unique()) <= {True, False}:
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
    if column.dtype.kind in "fiu":
        try:
            return float(text)
        except ValueError:
            raise UsageError(f"--where {column.name}: {text!r} is not a number") from None
    return text


def select(frame, wheres: list[str]):
    """The rows of `frame` for which every COLUMN OP VALUE holds (UsageError on a bad one)."""
    import operator

    ops = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
           ">=": operator.ge}
    for text in wheres:
        match = WHERE.match(text)
        if not match:
            raise UsageError(f"--where {text!r}: expected COLUMN OP VALUE, OP one of = != < <= > >=")
        name, op, raw = match.groups()
        if name not in frame.columns:
            if frame.empty:
                return frame
            raise UsageError(f"--where: no column {name!r} (python -m harness runs --columns all lists them)")
        column = frame[name]
        value = _value(raw, column)
        if op in ("<", "<=", ">", ">=") and not isinstance(value, float):
            raise UsageError(f"--where {text!r}: {op} needs a numeric column")
        keep = column.map(lambda v: v is not None and v == v and bool(ops[op](str(v) if isinstance(value, str)
                                                                                 else v, value)))
        frame = frame[keep.astype(bool)]
    return frame


def columns_of(frame, wanted: str | None) -> list[str]:
    if wanted == "all":
        return list(frame.columns)
    if wanted:
        names = [c.strip() for c in wanted.split(",") if c.strip()]
        missing = [c for c in names if c not in frame.columns]
        if missing and not frame.empty:
            raise UsageError(f"--columns: no column {', '.join(map(repr, missing))} "
                             "(python -m harness runs --columns all lists them)")
        return [c for c in names if c in frame.columns]
    tests = sorted(c for c in frame.columns if c.startswith("test_"))[:3]
    return [c for c in (*DEFAULT, *tests) if c in frame.columns]


def plain(value):
    """A table value for JSON: null for missing, "inf"/"-inf" for infinite, text for timestamps."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return plain(value.item())
    return value if isinstance(value, (bool, int, float)) else str(value)


def cell(value) -> str:
    """A table value as text: 4 significant digits for a float, empty for missing (a run ID such
    as 1234e5... stays text: nothing is re-parsed as a number)."""
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def main(args) -> int:
    from tabulate import tabulate

    from harness.tracking import open_runs
    from harness.tracking.lookup import table

    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    frame = table(open_runs(args.tracking_uri), args.experiment)
    frame = select(frame, args.where)
    if args.sort:
        if args.sort not in frame.columns and not frame.empty:
            raise UsageError(f"--sort: no column {args.sort!r}")
        frame = frame.sort_values(args.sort, kind="stable") if args.sort in frame.columns else frame
    elif "started" in frame.columns:
        frame = frame.sort_values("started", ascending=False, kind="stable")
    if args.limit:
        frame = frame.head(args.limit)
    shown = columns_of(frame, args.columns)
    rows = [{c: plain(r[c]) for c in shown} for r in frame.to_dict("records")]
    if args.json:
        print(json.dumps(rows, indent=None))
        return 0
    if not rows:
        print("no runs" + (f" in {', '.join(args.experiment)}" if args.experiment else ""), file=sys.stderr)
        return 0
    print(tabulate([[cell(v) for v in r.values()] for r in rows], headers=shown, disable_numparse=True), flush=True)
    print(f"{len(rows)} run(s)", file=sys.stderr)
    return 0
