"""Run a claim's experiment grid (all of it, or what is still missing) through the training path.

examples:
  python -m harness reproduce params
  python -m harness reproduce horizon --budget quick --jobs 2
  python -m harness reproduce all --budget smoke
  python -m harness reproduce imdb --budget full --device cuda --tracking-uri http://mlflow:5000
  python -m harness reproduce horizon --budget quick --status     # what is done, what is left

Budgets: smoke (seconds to minutes: tests), quick (sized for a CPU, well under an hour per
claim), full (the real protocol, for a GPU). Runs already finished with the same
configuration are reused and killed runs resume from their checkpoints, so an interrupted
reproduce continues: Ctrl-C or SIGTERM stops it within seconds (runs in flight save a
checkpoint), and the same command again resumes. Progress: one line per run started or
ended, and each run's status every $HARNESS_PROGRESS_SECONDS (default 30) on stderr.
Then the command it prints last: python -m harness report --claim CLAIM --budget BUDGET
(with the same --tracking-uri and --variants).
"""
from __future__ import annotations

import argparse
import shlex
import sys

from harness import claims
from harness.claims import BUDGETS
from harness.connections import shown
from harness.errors import UsageError
from harness.registry import import_plugins


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("claim", help=f"one of {', '.join(claims.available())}, or all")
    parser.add_argument("--budget", choices=BUDGETS, default="quick")
    parser.add_argument("--seeds", type=int, metavar="N", help="seeds per grid point (default: the budget's)")
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda")
    parser.add_argument("--tracking-uri", default="", metavar="URI", help="MLflow store (default ./mlflow.db)")
    parser.add_argument("--jobs", type=int, default=1, metavar="K", help="training processes in parallel")
    parser.add_argument("--devices", metavar="0,1,...", help="CUDA devices for the K jobs, round robin (job i on "
                        "devices[i mod N]; default every visible GPU; ignored with --device cpu)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE")
    parser.add_argument("--variants", metavar="A,B,...", help="the cells to study instead of the claim's own "
                        "(a claim pins its cells; a new cell joins only when named here)")
    parser.add_argument("--dry-run", action="store_true", help="list the grid without running it")
    parser.add_argument("--status", action="store_true", help="per grid, tuning study and ladder: runs finished, "
                        "diverged, killed (resumable) and missing, and what the next reproduce would run")
    parser.add_argument("--json", action="store_true", help="with --status: one JSON line per claim")


def parse_cells(text: str | None) -> tuple[str, ...] | None:
    """--variants a,b -> ("a", "b"), every name registered (UsageError naming the valid ones)."""
    if text is None:
        return None
    import variants

    cells = tuple(c.strip() for c in text.split(",") if c.strip())
    if not cells:
        raise UsageError("--variants needs at least one cell name")
    for cell in cells:
        variants.get(cell)  # an unknown name raises, listing the valid ones
    return cells


def dry_run(claim, args) -> str:
    """The claim's planned runs, every point validated."""
    from harness.reproduce.runner import spec_for

    plan = claim.plan(args.budget, args.seeds)
    for planned in plan:
        if claim.trains:
            spec_for(claim, planned, device=args.device, uri=args.tracking_uri)  # validates every point
    staged = "".join(f"; tuning {t.label}: {t.trials} trials x {len(t.cells)} cells"
                     for t in claim.tunings(args.budget)) + "".join(
        f"; ladder {lad.label}: {len(lad.cells)} cells x {lad.seeds} seeds up to {len(lad.lags)} lags"
        for lad in claim.ladders(args.budget))
    later = len(claim.plan(args.budget, args.seeds, {t.label: {} for t in claim.tunings(args.budget)})) - len(plan)
    tuned = f"; {later} runs in grids that take the tuned values" if later else ""
    return f"{claim.name} ({args.budget}): {len(plan)} runs in static grids{tuned}{staged}"


def main(args) -> int:
    from harness.commands.common import worker_gpus
    from harness.reproduce.pool import Pool
    from harness.reproduce.runner import interrupted, reproduce, threads_for
    from harness.tracking import Outcome
    from harness.training.progress import interval
    from tasks import imdb_data

    imdb_data.use_hints("reproduce")  # data hints name what reproduce has (no --set)

    import_plugins(args.plugin)
    names = claims.available() if args.claim == "all" else [args.claim]
    cells = parse_cells(args.variants)
    selected = [claims.get(name, cells) for name in names]
    if args.seeds is not None and args.seeds < 1:
        raise UsageError("--seeds must be >= 1")
    if args.jobs < 1:
        raise UsageError("--jobs K needs K >= 1")
    if args.json and not args.status:
        raise UsageError("--json goes with --status")
    interval()  # a bad $HARNESS_PROGRESS_SECONDS is one line before any run exists
    if args.status:
        from harness.reproduce.status import print_status

        for claim in selected:
            print_status(claim, args.budget, seeds=args.seeds, device=args.device, uri=args.tracking_uri,
                         as_json=args.json)
        return 0
    command = f"python -m harness reproduce {args.claim} --budget {args.budget}" + "".join(
        f" --{flag} {shlex.quote(str(value))}" for flag, value in
        (("seeds", args.seeds), ("device", args.device), ("jobs", args.jobs), ("variants", args.variants))
        if value not in (None, "auto", 1))
    failed = 0
    with Pool(args.jobs, threads=threads_for(args.jobs), plugins=tuple(args.plugin), gpus=worker_gpus(args.jobs, args.devices, args.device)) as pool:
        for claim in selected:
            if args.dry_run:
                print(dry_run(claim, args))
                continue
            outcomes = reproduce(claim, args.budget, seeds=args.seeds, device=args.device, uri=args.tracking_uri,
                                 jobs=args.jobs, command=command, report=lambda line: print(line, flush=True),
                                 pool=pool)
            if interrupted(outcomes, pool):
                why = f"interrupted ({pool.signal})" if pool.signal else "stopped: a run ended killed or its worker died"
                print(f"{why}: run the same command again to resume; --status shows what is left", file=sys.stderr)
                return 130
            failed += sum(o.outcome == Outcome.DIVERGED for o in outcomes)
    if failed:
        print(f"note: {failed} runs diverged (outcome 'diverged'; the reports count them as not solved)")
    print(f"next: {next_step(args)}")
    return 0


def next_step(args) -> str:
    """The report command for what this reproduce ran: its claim, its budget (a smaller budget
    than a committed report's goes to results/BUDGET/, see `report --help`), its store (the
    password shown as ***: the user has it) and cells."""
    words = ["python", "-m", "harness", "report", *(["--claim", args.claim] if args.claim != "all" else []),
             "--budget", args.budget, *(["--tracking-uri", shown(args.tracking_uri)] if args.tracking_uri else []),
             *(["--variants", args.variants] if args.variants else [])]
    return shlex.join(words)
