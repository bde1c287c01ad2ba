"""Turn the claims' MLflow runs into tables, figures, verdicts and an HTML dashboard.

examples:
  python -m harness report                       # every claim with runs, into results/ and dashboards/
  python -m harness report --claim horizon --budget quick
  python -m harness report --from-results        # recompute every report from results/<claim>/runs.csv, no store
  python -m harness report --from-results --claim params --out /tmp/check
  python -m harness report --out /tmp/report     # /tmp/report/<claim>/ and /tmp/report/dashboards/
  python -m harness report --out /tmp/results --dashboards /tmp/dash
  python -m harness report --claim horizon --budget smoke --force   # replace a larger budget's report

Writes results/<claim>/ (CSV and Markdown tables, PNG and SVG figures, README.md with the
protocol, budget, machine, commit, command and verdict, runs.csv with one row per run it used,
and the metric histories and artifacts its analysis read) and dashboards/index.html; in the
store, the report as a run of the claim's experiment (tag kind=report, one per claim and
budget, replaced when reported again). Output
goes where you say: with --out DIR and no --dashboards the HTML goes to DIR/dashboards/, so
nothing outside DIR changes; results/ and dashboards/ are written only when --out is not given.

A report made with a larger budget (smoke < quick < full) is never replaced without --force:
without --budget each claim is reported at the budget of the report already in its folder
(when the store has no runs of that budget, the folder is kept as it is, and a line says so);
a smaller --budget goes to results/BUDGET/<claim> and results/BUDGET/dashboards (DIR/BUDGET/
with --out DIR), and a line says where and why.

--from-results [DIR] (default results) reads each claim's runs from DIR/<claim>/runs.csv and
the files beside it instead of a store, and writes the report again (into DIR unless --out
is given; HTML as above): the same tables, byte for byte. No store is opened, so no report
run is logged; a claim folder without runs.csv is left out, with a line saying so.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness import claims
from harness.claims import BUDGETS
from harness.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--claim", action="append", metavar="NAME", help="claims to report (default: all)")
    parser.add_argument("--budget", choices=BUDGETS, help="default: the budget of each claim's report already in "
                        "the results folder, else the largest budget the claim has runs for")
    parser.add_argument("--tracking-uri", default="", metavar="URI")
    parser.add_argument("--from-results", nargs="?", const="results", metavar="DIR",
                        help="recompute the reports from DIR/<claim>/runs.csv (default DIR: results), no store")
    parser.add_argument("--out", metavar="DIR", help="where the claim folders go (default: results)")
    parser.add_argument("--dashboards", metavar="DIR", help="where the HTML goes (default: dashboards, or "
                        "DIR/dashboards with --out DIR); '' to skip the HTML")
    parser.add_argument("--variants", metavar="A,B,...", help="the cells to report instead of each claim's own "
                        "(as given to reproduce --variants)")
    parser.add_argument("--force", "--replace", action="store_true", help="write into the results folder even over "
                        "a report made with a larger budget (and, without --budget, report the largest budget "
                        "with runs)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of verdicts")


def destinations(out: str | None, dashboards: str | None) -> tuple[Path, Path | None]:
    """(results folder, HTML folder or None). The checkout's results/ and dashboards/ are
    the defaults only together: an --out elsewhere takes the HTML with it."""
    if dashboards is None:
        dashboards = "dashboards" if out is None else str(Path(out) / "dashboards")
    return Path(out or "results"), Path(dashboards) if dashboards else None


def main(args) -> int:
    from harness.report.write import report_all

    from harness.commands.reproduce import parse_cells
    from harness.outdirs import make_dirs, remove_empty

    names = args.claim or claims.available()
    cells = parse_cells(args.variants)
    selected = [claims.get(name, cells) for name in names]
    source = None
    if args.from_results is not None:
        source = Path(args.from_results)
        if args.tracking_uri:
            raise UsageError("--from-results reads no store: drop --tracking-uri")
        if not source.is_dir():
            raise UsageError(f"--from-results {source}: no such folder")
        missing = [n for n in names if args.claim and not (source / n / "runs.csv").is_file()]
        if missing:
            raise UsageError(f"--from-results {source}: no {source / missing[0] / 'runs.csv'} (report {missing[0]} "
                             f"from its store first)")
    out, dashboards = destinations(args.out or (None if source in (None, Path("results")) else str(source)),
                                   args.dashboards)
    created = make_dirs((out, "--out"), *([(dashboards, "--dashboards")] if dashboards else []))  # before output
    try:
        reported = report_all(selected, args.tracking_uri, out, dashboards, args.budget, replace=args.force,
                              source=source)
    except BaseException:
        remove_empty(created)
        raise
    written = reported.written
    remove_empty(created)  # those left empty (the HTML folder, when every report went to BUDGET/)
    for note in reported.notes:
        print(note)
    if not written:
        if source is not None:
            at = f" at budget {args.budget}" if args.budget else ""
            raise UsageError(f"--from-results {source}: no runs of {' '.join(names) if args.claim else 'any claim'}"
                             f"{at} in a runs.csv there (a report from a store writes it)")
        if reported.notes:  # every claim with runs kept its larger report: nothing to write, nothing wrong
            if args.json:
                print("{}")
            return 0
        asked = " ".join(names) if args.claim else "any claim"
        budget = f" --budget {args.budget}" if args.budget else ""
        from harness.tracking import describe_store

        raise UsageError(f"no finished runs of {asked} in {describe_store(args.tracking_uri)}; run python -m harness reproduce "
                         f"{names[0] if len(names) == 1 else 'CLAIM'}{budget} first")
    for w in written:
        print(f"{w.claim.name:8} {w.meta['budget']:6} {w.meta['runs']:4} runs  {w.report.verdict}: "
              f"{w.report.verdict_detail}")
    print(f"wrote {', '.join(str(w.directory) for w in written)}"
          + (f" and {', '.join(map(str, reported.indexes))}" if reported.indexes else ""))
    if args.json:
        print(json.dumps({w.claim.name: {"verdict": w.report.verdict, "budget": w.meta["budget"],
                                         "runs": w.meta["runs"]} for w in written}))
    return 0
