"""Tune one variant on one task with Optuna; every trial is an MLflow child run.

examples:
  python -m harness sweep --variant lstm --task recall --trials 40
  python -m harness sweep --variant gru --task copy --trials 40 --workers 2 --pruner hyperband
  python -m harness sweep --variant lstm --task recall --trials 200 \\
      --storage postgresql://user:pass@db-host/optuna --tracking-uri http://mlflow-host:5000
  python -m harness sweep --report lstm-recall-L20          # reprint an existing study

Running the same command again continues the study up to --trials finished trials. The
default storage is an Optuna journal file beside the MLflow store, safe for several
processes on one machine; across machines use PostgreSQL (see README, "Sweeps and scaling out").
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
from pathlib import Path

from harness.sweep import space as spaces
from harness.errors import UsageError
from harness.commands.common import add_config_arguments, resolve_spec
from harness.config import ConfigError, flatten
from harness.training.spec import load_toml
from harness.sweep.storage import describe_storage, lock_for, record_or_check_study
from harness.tracking import local_dir, open_tracker, resolve_uri


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
    parser.add_argument("--heartbeat", type=int, default=60, metavar="S",
                        help="RDB storage: heartbeat interval; a worker silent for 2*S has its trial retried")
    parser.add_argument("--fail-running", action="store_true",
                        help="first mark trials left RUNNING by a crashed sweep as FAIL and queue them again "
                        "with their parameters (journal storage; only when no other sweep runs on it)")
    parser.add_argument("--report", metavar="STUDY", help="print (and log) the report of an existing study")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")


def settings_from(args):
    from harness.sweep.study import Settings

    values = load_toml(args.config) if args.config else {}
    search = values.pop("search", {})
    if not isinstance(search, dict):
        raise ConfigError("[search] must be a table of field = {type = ...} entries")
    if args.config:  # the remaining sections go through the normal resolution
        import tomli_w

        with tempfile.TemporaryDirectory() as tmp:
            args.config = str(Path(tmp) / "base.toml")
            Path(args.config).write_text(tomli_w.dumps(values))
            spec = resolve_spec(args).validate()
    else:
        spec = resolve_spec(args).validate()
    if not args.trials or args.trials < 1:
        raise UsageError("--trials N (N >= 1) is required")
    if args.heartbeat < 1:
        raise UsageError("--heartbeat S needs S >= 1 (seconds)")
    if args.workers < 1:
        raise UsageError("--workers K needs K >= 1")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError("--timeout S needs S > 0 (seconds)")
    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    if objectives[0] != "metric" or not set(objectives) <= {"metric", "time", "params"}:
        raise UsageError("--objectives must be metric, metric,time or metric,params")
    task = spec.build_task()
    uri = resolve_uri(spec.track.tracking_uri)
    store = local_dir(uri) or Path.cwd()
    base = spec.to_dict()
    base["track"]["tracking_uri"] = uri
    space = spaces.space_for(spec.cell_class, search, fixed=flatten("", base))
    check_values(space, base)
    directions = ["maximize" if task.higher_is_better else "minimize"] + ["minimize"] * (len(objectives) - 1)
    return Settings(
        study=args.study or f"{spec.variant}-{spec.task_name}-L{spec.task.length}",
        storage=args.storage or str(store / "optuna.journal"), trials=args.trials, base=base,
        space=space, directions=directions, objectives=objectives,
        metric=f"best_val_{task.primary_metric}", sampler=args.sampler, pruner=args.pruner,
        seed=spec.train.seed if seed_given(args, values) else None, heartbeat=args.heartbeat, timeout=args.timeout,
        tracking_uri=uri if spec.track.enabled else "", experiment=spec.experiment)


def check_values(space: dict, base: dict) -> None:
    """Every value the search can give a field (each entry's grid points: its choices, every
    int, or a float range's ends and middle), set on the base config together with the fields
    its condition compares with ==, must make a spec that validates, as a trial's does: a
    value the spec refuses (a backward direction on a causal task, a path the cell lacks) is a
    ConfigError naming the entry, before any storage is written, not a failed trial later."""
    from harness.training.spec import apply_sets, build_spec

    for key, entry in space.items():
        alongside = [f"{field}={value}" for field, op, value in spaces.conditions(key, entry) if op == "=="]
        for value in spaces.grid_points(entry):
            try:
                build_spec(apply_sets(base, [*alongside, f"{key}={value}"])).validate(warn=False)
            except ConfigError as err:
                raise ConfigError(f"search.{key}: a trial with {key}={value} would be refused: {err}") from None


def seed_given(args, config: dict) -> bool:
    """Whether the user chose train.seed (--seed, --set or the config file): it then seeds the
    sampler too; otherwise the study gets a random sampler seed of its own."""
    sets = [s.split("=", 1)[0].strip() for s in args.sets]
    return args.seed is not None or "train.seed" in sets or "seed" in config.get("train", {})


def prepare(settings, fail_running: bool) -> dict:
    """Check that the storage works (before anything is written), then under the sweep lock:
    check or record the study's identity and seed, find or create the MLflow parent run,
    retry trials a crashed sweep left RUNNING (--fail-running), queue the trials still missing."""
    from harness.sweep import study as studies

    # both stores are checked before either is written to: a bad one fails in one line, and
    # leaves no study without its parent run, nor a parent run without its study
    tracker = open_tracker(settings.tracking_uri, settings.experiment) if settings.tracking_uri else None
    storage = studies.study_storage(settings)
    with lock_for(settings.storage):
        study = studies.open_study(settings, storage=storage)
        parent = record_or_check_study(study, settings, tracker)
        settings.parent_run_id = parent
        retry = studies.stale_trial_callback(settings, "sweep crashed (resumed with --fail-running)")
        orphans = studies.fail_orphans(study, retry) if fail_running else 0
        grid = spaces.grid(settings.space, flatten("", settings.base)) if settings.sampler == "grid" else None
        queued = studies.top_up(study, settings.trials, grid)
    if grid is not None and len(grid) < settings.trials:
        print(f"note: the grid has {len(grid)} points, fewer than --trials {settings.trials}", file=sys.stderr)
    return {"queued": queued, "orphans_failed": orphans}


def run_workers(settings, workers: int) -> None:
    from harness.sweep.study import run_worker

    if workers <= 1:
        run_worker(settings, 0, progress=sys.stderr.isatty())
        return
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch threads
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [context.Process(target=run_worker, args=(settings, i, False, threads), name=f"sweep-worker-{i}")
             for i in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [p.name for p in procs if p.exitcode not in (0, None)]
    if failed:
        print(f"warning: workers exited abnormally: {', '.join(failed)}", file=sys.stderr)


def report(storage: str, name: str, log: bool = True) -> dict:
    """Best trial, trials table and figures of a study; logged to its MLflow parent run."""
    from harness.sweep import study as studies

    study = studies.load(storage, name)
    frame = studies.trials_frame(study)
    counts = studies.counts(study)
    best = studies.best_trials(study)
    attrs = study.user_attrs
    summary = {
        "study": name, "storage": describe_storage(storage), "variant": attrs.get("variant"),
        "task": attrs.get("task"), "directions": [d.name.lower() for d in study.directions],
        "counts": {k: v for k, v in counts.items() if v}, "parent_run_id": attrs.get("mlflow_parent_run_id"),
        "best": [{"number": t.number, "values": t.values, "params": t.params,
                  "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
                  "test": {k: v for k, v in t.user_attrs.items() if k.startswith("test_")},
                  "ties": studies.ties(study, t) if len(study.directions) == 1 else 0} for t in best],
    }
    uri = attrs.get("tracking_uri")
    if log and uri and summary["parent_run_id"]:
        tracker = open_tracker(uri, attrs.get("experiment", name))
        tracker.start(run_name=name, tags={}, resume_run_id=summary["parent_run_id"])
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "trials.csv"
            frame.to_csv(csv, index=False)
            tracker.log_artifact(csv)
        for fig_name, figure in studies.figures(study).items():
            if isinstance(figure, str):
                tracker.set_tags({f"figure.{fig_name}": figure})
            else:
                tracker.log_figure(figure, f"{fig_name}.png")
        if best:
            tracker.log_metrics({f"best_value_{i}": v for i, v in enumerate(best[0].values)}, 0)
            tracker.set_tags({"best_trial": str(best[0].number), "best_params": json.dumps(best[0].params)})
        finished = counts["RUNNING"] == 0 and counts["WAITING"] == 0
        tracker.set_tags({"trials_complete": str(counts["COMPLETE"]), "trials_pruned": str(counts["PRUNED"]),
                          "trials_failed": str(counts["FAIL"])})
        tracker.end("FINISHED") if finished else tracker.flush()
    summary["table"] = frame
    return summary


def print_report(summary: dict) -> None:
    import pandas as pd

    print(f"study {summary['study']} ({summary['variant']} on {summary['task']}, {summary['storage']}): "
          + ", ".join(f"{v} {k.lower()}" for k, v in summary["counts"].items()))
    frame = summary["table"]
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


def main(args) -> int:
    if args.report:
        uri = resolve_uri(args.tracking_uri or "")
        storage = args.storage or str((local_dir(uri) or Path.cwd()) / "optuna.journal")
        summary = report(storage, args.report)  # a missing study or bad storage: ConfigError, one line
    else:
        settings = settings_from(args)
        prepared = prepare(settings, args.fail_running)
        queued = prepared["queued"]
        print(f"study {settings.study}: {queued} trial{'' if queued == 1 else 's'} queued "
              f"(target {settings.trials}) in {describe_storage(settings.storage)}", file=sys.stderr)
        run_workers(settings, args.workers)
        summary = report(settings.storage, settings.study)
    print_report(summary)
    if args.json:
        out = {k: v for k, v in summary.items() if k != "table"}
        print(json.dumps(out, default=str))
    return 0
