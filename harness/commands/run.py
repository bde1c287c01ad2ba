"""Train one variant on one task; track accuracy and gradient flow through time in MLflow.

examples:
  python -m harness run --variant lstm
  python -m harness run --variant simple_rnn --task adding --set task.length=200 --set train.steps=3000
  python -m harness run --variant gru --config my.toml --json
  python -m harness run --resume RUN_ID          # continue an interrupted run
"""
from __future__ import annotations

import argparse
import json
import sys

from harness import checkpoint
from harness.errors import UsageError
from harness.commands.common import add_config_arguments, resolve_spec
from harness.spec import spec_from_dict
from harness.tracking import make_tracker, resolve_uri, ui_command

EXIT = {"FINISHED": 0, "FAILED": 1, "KILLED": 130, "PRUNED": 1}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run from its checkpoint")
    parser.add_argument("--json", action="store_true", help="end with one JSON line describing the run")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def load_resume(args) -> tuple:
    from harness.checkpoint import checkpoint_root

    uri = resolve_uri(args.tracking_uri or "")
    path = checkpoint_root("", uri) / args.resume / checkpoint.FILE
    if not path.exists():
        raise UsageError(f"no checkpoint for run {args.resume} at {path}")
    payload = checkpoint.load(path)
    payload["run_id"] = args.resume
    spec = spec_from_dict(payload["config"])
    return spec, payload


def summary(result, spec, tracker) -> str:
    import pandas as pd

    head = (f"{spec.variant} on {spec.task_name} (length {spec.task.length}, seed {spec.train.seed}): "
            f"{result.status} after {result.steps} steps in {result.wall_time_s:.1f} s on {result.device}"
            f" [{result.path} path, {result.trainable_params:,} parameters]")
    lines = [head]
    if result.reason:
        lines.append(f"reason: {result.reason}")
    if result.metrics:
        keys = sorted(result.metrics, key=lambda k: (not k.startswith("test_"), k))
        table = pd.DataFrame({"metric": keys, "value": [result.metrics[k] for k in keys]})
        lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if tracker.run_id:
        lines.append(f"MLflow run {result.run_id} in experiment {tracker.experiment!r}; open the UI with:")
        lines.append(f"  {ui_command(tracker.uri)}")
        if not tracker.uri.startswith("http"):
            lines.append(f"  then http://127.0.0.1:5000/#/experiments/{tracker.experiment_id}/runs/{result.run_id}")
    return "\n".join(lines)


def main(args) -> int:
    from harness.train import train

    if args.resume:
        spec, resume = load_resume(args)
    else:
        spec, resume = resolve_spec(args), None
    spec.validate()
    tracker = make_tracker(spec.track, spec.experiment)
    result = train(spec, tracker, resume=resume, progress=not args.quiet and sys.stderr.isatty())
    print(summary(result, spec, tracker))
    if args.json:
        print(json.dumps({
            "run_id": result.run_id, "status": result.status, "experiment": spec.experiment,
            "variant": spec.variant, "task": spec.task_name, "length": spec.task.length,
            "seed": spec.train.seed, "trainable_params": result.trainable_params,
            "device": result.device, "path": result.path, "steps": result.steps,
            "wall_time_s": round(result.wall_time_s, 3), "tracking_uri": tracker.uri or None,
            "reason": result.reason or None, "metrics": result.metrics}))
    return EXIT[result.status]
