"""Tune one variant on one task with Optuna; every trial is an MLflow child run.

examples:
  python -m harness sweep --variant lstm --task recall --trials 40
  python -m harness sweep --variant gru --task copy --trials 40 --workers 2 --pruner hyperband
  python -m harness sweep --variant lstm --task recall --trials 200 \\
      --storage postgresql://user:pass@db-host/optuna --tracking-uri http://mlflow-host:5000
  python -m harness sweep --report lstm-recall-L20          # reprint an existing study

Running the same command again continues the study up to --trials trials, whatever an
earlier (interrupted, killed or larger) sweep left; trials lost with a killed process are
run again. The default storage is an Optuna journal file beside the MLflow store, safe for
several processes on one machine; across machines use PostgreSQL (see README, "Sweeps and
scaling out").
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys

from harness.commands.common import add_config_arguments, resolve_spec, worker_gpus
from harness.config import ConfigError
from harness.errors import UsageError
from harness.sweep.settings import default_storage, sweep_settings
from harness.connections import shown
from harness.training.spec import load_toml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--trials", type=int, metavar="N", help="total finished trials the study should reach")
    parser.add_argument("--study", metavar="NAME", help="study name (default: VARIANT-TASK-LLENGTH)")
    parser.add_argument("--storage", metavar="URL", help="Optuna storage: a journal file path (default: "
                        "optuna.journal beside the MLflow store) or postgresql://... for several machines")
    parser.add_argument("--sampler", choices=["tpe", "random", "grid"], default="tpe")
    parser.add_argument("--pruner", choices=["median", "hyperband", "none"], default="median")
    parser.add_argument("--objectives", default="metric", metavar="LIST",
                        help="metric (default), metric,time or metric,params: multi-objective trade-offs")
    parser.add_argument("--timeout", type=float, metavar="S", help="stop taking new trials after S seconds")
    parser.add_argument("--workers", type=int, default=1, metavar="K", help="worker processes on this machine")
    parser.add_argument("--devices", metavar="0,1,...", help="CUDA devices for the K workers, round robin (worker i "
                        "on devices[i mod N]; default every visible GPU; ignored with train.device=cpu)")
    parser.add_argument("--heartbeat", type=int, default=60, metavar="S",
                        help="RDB storage: heartbeat interval; a worker silent for 2*S has its trial retried")
    parser.add_argument("--fail-running", action="store_true",
                        help="first mark every RUNNING trial of the study FAIL and queue it again with its "
                        "parameters, even if a live sweep runs it (a journal's lost trials are found "
                        "without it; RDB storage finds them by their heartbeats)")
    parser.add_argument("--report", metavar="STUDY", help="print (and log) the report of an existing study")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")


def settings_from(args):
    """The sweep the command line asks for: the run config (its file without [search], --set
    and the shortcuts) and the search space (the cell's, with the file's [search] applied)."""
    values = load_toml(args.config) if args.config else {}
    search = values.pop("search", {})
    if not isinstance(search, dict):
        raise ConfigError("[search] must be a table of field = {type = ...} entries")
    spec = resolve_spec(args, values).validate()
    if not args.trials or args.trials < 1:
        raise UsageError("--trials N (N >= 1) is required")
    if args.heartbeat < 1:
        raise UsageError("--heartbeat S needs S >= 1 (seconds)")
    if args.workers < 1:
        raise UsageError("--workers K needs K >= 1")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError("--timeout S needs S > 0 (seconds)")
    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    if not objectives or objectives[0] != "metric" or not set(objectives) <= {"metric", "time", "params"}:
        raise UsageError("--objectives must be metric, metric,time or metric,params")
    return sweep_settings(spec, trials=args.trials, study=args.study, storage=args.storage, search=search,
                          objectives=objectives, sampler=args.sampler, pruner=args.pruner,
                          seed=spec.train.seed if seed_given(args, values) else None, heartbeat=args.heartbeat,
                          timeout=args.timeout)


def seed_given(args, config: dict) -> bool:
    """Whether the user chose train.seed (--seed, --set or the config file): it then seeds the
    sampler too; otherwise the study gets a random sampler seed of its own."""
    sets = [s.split("=", 1)[0].strip() for s in args.sets]
    return args.seed is not None or "train.seed" in sets or "seed" in config.get("train", {})


def run_workers(settings, workers: int, gpus: tuple[str, ...] = ()) -> None:
    """Run the study's queued trials in this process or in `workers` spawned ones (worker i sees
    only GPU gpus[i] when `gpus` is given, so several workers share a machine's GPUs). Ctrl-C
    reaches every process of the terminal's group; a signal sent to this process alone is
    passed on to the workers, and it returns once they have queued their trials again."""
    from harness.device import see_only
    from harness.sweep.study import run_worker, worker_process

    if workers <= 1:
        see_only(gpus[0] if gpus else None)
        run_worker(settings, progress=True)  # a bar on a terminal, else status lines
        return
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch threads
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [context.Process(target=worker_process, args=(settings, threads, gpus[i] if gpus else None),
                                 name=f"sweep-worker-{i}")
             for i in range(workers)]
    for p in procs:
        p.start()
    from harness.sweep.progress import watch

    with watch(settings.storage, settings.study):  # the study's counts on stderr as they change
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            for p in procs:
                if p.is_alive():
                    os.kill(p.pid, signal.SIGINT)
            for p in procs:
                p.join()
            raise
    if any(p.exitcode == 130 for p in procs):  # a worker stopped by a signal of its own
        raise KeyboardInterrupt
    failed = [p.name for p in procs if p.exitcode not in (0, None)]
    if failed:
        print(f"warning: workers exited abnormally: {', '.join(failed)}", file=sys.stderr)


def interrupted_line(err: KeyboardInterrupt) -> str:
    requeued = getattr(err, "requeued", None)
    what = (f"trial {requeued} was failed and queued again" if requeued is not None else
            "any trial in flight was failed and queued again")
    return f"interrupted: {what}; run the same command to continue the study"


def print_report(summary: dict) -> None:
    import pandas as pd

    print(f"study {summary['study']} ({summary['variant']} on {summary['task']}, {summary['storage']}): "
          + ", ".join(f"{v} {k.lower()}" for k, v in summary["counts"].items()))
    frame = summary["table"]
    if "user_attrs_reason" in frame.columns:  # trials cancelled at set-up never ran: counted, not listed
        cancelled = frame["user_attrs_reason"].astype(str).str.startswith("cancelled:")
        if cancelled.any():
            print(f"({plural(int(cancelled.sum()), 'cancelled trial')} not listed)")
            frame = frame[~cancelled]
    if len(frame):
        keep = [c for c in frame.columns if c in ("number", "value", "state") or c.startswith("params_")
                or c in ("user_attrs_test_accuracy", "user_attrs_test_mse", "user_attrs_wall_time_s")]
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(frame[keep].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for best in summary["best"]:
        tied = f" ({best['ties']} other trials tie at this value; the earliest is shown)" if best["ties"] else ""
        print(f"best trial {best['number']}: values {best['values']}{tied} params {best['params']}")
        if best["test"]:
            print(f"  test metrics of that trial (recorded, not optimised): {best['test']}")
    if summary["parent_run_id"]:
        print(f"MLflow parent run {summary['parent_run_id']}; dashboard: optuna-dashboard {summary['storage']}")


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def main(args) -> int:
    from harness.sweep.summary import report

    if args.report:
        storage = args.storage or default_storage(args.tracking_uri or "")
        summary = report(storage, args.report)  # a missing study or bad storage: ConfigError, one line
    else:
        from harness.sweep.study import prepare

        settings = settings_from(args)
        gpus = worker_gpus(args.workers, args.devices, settings.base["train"]["device"])  # before any trial is queued
        try:
            prepared = prepare(settings, args.fail_running)
            queued, points = prepared["queued"], prepared["grid_points"]
            if points is not None and points < settings.trials:
                print(f"note: the grid has {points} points, fewer than --trials {settings.trials}", file=sys.stderr)
            if prepared["orphans_failed"]:
                print(f"note: {plural(prepared['orphans_failed'], 'lost trial')} (left RUNNING by a process "
                      "that died) failed and queued again", file=sys.stderr)
            if prepared["cancelled"]:
                print(f"note: {plural(prepared['cancelled'], 'queued trial')} beyond --trials {settings.trials} "
                      "cancelled (FAIL, reason recorded)", file=sys.stderr)
            print(f"study {settings.study}: {plural(queued, 'trial')} queued "
                  f"(target {settings.trials}) in {shown(settings.storage)}", file=sys.stderr)
            run_workers(settings, args.workers, gpus)
        except KeyboardInterrupt as err:
            print(interrupted_line(err), file=sys.stderr)
            return 130
        summary = report(settings.storage, settings.study)
    print_report(summary)
    if args.json:
        out = {k: v for k, v in summary.items() if k != "table"}
        print(json.dumps(out, default=str))
    return 0
