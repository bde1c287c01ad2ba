"""Train one variant on one task; track accuracy and gradient flow through time in MLflow.

examples:
  python -m harness run --variant lstm
  python -m harness run --variant simple_rnn --task adding --set task.length=200 --set train.steps=3000
  python -m harness run --variant gru --config my.toml --json
  python -m harness run --resume RUN_ID          # continue an interrupted run

exit codes: 0 finished, 1 diverged or pruned, 2 bad input (config, data, tracking store, a run
another process is training), 130 interrupted by SIGINT, 143 by SIGTERM (resume it with --resume RUN_ID).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import signal

from harness.config import flatten
from harness.training import checkpoint, memory
from harness.connections import shown
from harness.errors import UsageError
from harness.commands.common import add_config_arguments, resolve_spec
from harness.training.spec import build_spec
from harness.tracking import Outcome, local_dir, open_tracker, resolve_uri, ui_command
from harness.tracking.store import check as check_store
from harness.tracking.writer import check_text, run_outcome
from harness.training.outcomes import ENDED

EXIT = {Outcome.FINISHED: 0, Outcome.DIVERGED: 1, Outcome.PRUNED: 1, Outcome.KILLED: 130}
LEGEND = ("gradient_horizon: steps back until ||dL/dh_t|| falls below track.probe_threshold x its value at "
          "the loss (censored = 1: it never did, the horizon is at least the sequence); gradient_decay: "
          "per-step factor of that norm (< 1 vanishing, > 1 exploding); see README 'What a run records'")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run from its checkpoint")
    parser.add_argument("--json", action="store_true", help="end with one JSON line describing the run")
    parser.add_argument("--quiet", action="store_true", help="no progress: no bar on a terminal, no status lines "
                        "elsewhere ($HARNESS_PROGRESS_SECONDS between them, default 30)")


def load_resume(args) -> tuple:
    from harness.training.checkpoint import checkpoint_root

    if not args.resume.strip():
        raise UsageError("--resume needs the id of the run to continue")
    given = [f"--{name}" for name in ("variant", "task", "seed", "device", "config", "experiment")
             if getattr(args, name)]
    if given or args.sets:  # silently training what the checkpoint says would ignore the user
        raise UsageError(f"--resume continues run {args.resume} as it was configured; drop "
                         f"{', '.join(given + (['--set'] if args.sets else []))}")
    uri = resolve_uri(args.tracking_uri or "")
    check_store(uri)  # a store that cannot be used is said as such, not as a missing checkpoint
    path = checkpoint_root("", local_dir(uri)) / args.resume / checkpoint.FILE
    if not path.exists():  # a run that reached a result has none (track.keep_checkpoint): say that first
        refuse_ended(uri, args.resume, missing_ok=True)
        raise UsageError(f"no checkpoint for run {args.resume} at {path}")
    payload = checkpoint.load(path)  # DamagedCheckpoint: one line naming the file
    payload["run_id"] = args.resume
    spec = build_spec(payload["config"])  # RunSpec.to_dict() output
    if spec.track.enabled:  # the run continues in the store it is looked up in (main refuses one without it)
        spec = dataclasses.replace(spec, track=spec.track.replace(tracking_uri=uri))
    return spec, payload


def refuse_ended(uri: str, run_id: str, missing_ok: bool = False) -> None:
    """UsageError unless run `run_id` in the store at `uri` can be continued: it must exist (or
    `missing_ok`) and not have ended with a result or a prune (resuming one would log its final
    metrics twice)."""
    if not uri:  # tracking off: nothing records how the run ended
        return
    outcome = run_outcome(uri, run_id)
    if outcome is None and missing_ok:
        return
    if outcome is None:
        raise UsageError(f"run {run_id} is not in the tracking store {shown(uri)}; "
                         "give the --tracking-uri it was logged to")
    if outcome in ENDED:
        raise UsageError(f"run {run_id} already ended ({outcome.value}); --resume continues only an "
                         "interrupted run (killed, crashed, or left running by a lost process)")


def summary(result, spec, tracker) -> str:
    import pandas as pd

    head = (f"{spec.variant} on {spec.task_name} (length {spec.task.length}, seed {spec.train.seed}): "
            f"{result.outcome.value} after {result.steps} steps in {result.wall_time_s:.1f} s on {result.device}"
            f" [{result.path} path, {result.threads} thread{'' if result.threads == 1 else 's'}, "
            f"{result.trainable_params:,} parameters]")
    lines = [head]
    if result.reason:
        lines.append(f"reason: {result.reason}")
    if result.outcome == Outcome.KILLED and "--resume" in result.reason:  # the whole command, store included
        store = f" --tracking-uri {shlex.quote(shown(tracker.uri))}" if tracker.uri else ""
        lines.append(f"continue it with: python -m harness run --resume {result.run_id}{store}")
    if result.metrics:
        keys = sorted(result.metrics, key=lambda k: (not k.startswith("test_"), k))
        table = pd.DataFrame({"metric": keys, "value": [result.metrics[k] for k in keys]})
        lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        if "gradient_horizon" in result.metrics:
            lines.append(LEGEND)
    if tracker.run_id:
        lines.append(f"MLflow run {result.run_id} in experiment {tracker.experiment!r}; open the UI with:")
        lines.append(f"  {ui_command(tracker.uri)}")
        if tracker.local_dir is not None:  # a local store: the UI command above serves it
            lines.append(f"  then http://127.0.0.1:5000/#/experiments/{tracker.experiment_id}/runs/{result.run_id}")
    return "\n".join(lines)


def main(args) -> int:
    from harness.training.progress import interval
    from harness.training.train import train

    interval()  # a bad $HARNESS_PROGRESS_SECONDS is one line before any run exists

    if args.resume is not None:
        spec, resume = load_resume(args)
    else:
        spec, resume = resolve_spec(args), None
    spec.validate()
    if spec.track.enabled:  # text the store would refuse, before the store or any folder exists
        check_text(flatten("", spec.to_dict()), experiment=spec.experiment, run_name=spec.run_name)
    memory.check(spec)  # sizes that cannot fit, before anything is allocated
    tracker = open_tracker(spec.track.tracking_uri, spec.experiment, enabled=spec.track.enabled)
    if resume is not None:
        refuse_ended(tracker.uri, args.resume)
    result = train(spec, tracker, resume=resume, progress=not args.quiet)
    print(summary(result, spec, tracker))
    if args.json:
        print(json.dumps({
            "run_id": result.run_id, "outcome": result.outcome.value, "status": result.outcome.status,
            "experiment": spec.experiment, "variant": spec.variant, "task": spec.task_name,
            "length": spec.task.length, "seed": spec.train.seed, "trainable_params": result.trainable_params,
            "device": result.device, "path": result.path, "threads": result.threads, "steps": result.steps,
            "wall_time_s": round(result.wall_time_s, 3), "tracking_uri": shown(tracker.uri) or None,
            "reason": result.reason or None, "metrics": result.metrics}))
    if result.outcome == Outcome.KILLED and result.reason.startswith("SIGTERM"):
        return 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM
    return EXIT.get(result.outcome, 1)
