"""One run of a claim (a grid point, a ladder step): its spec, its execution in this process or
a worker, and the data check that precedes any run. Used by reproduce.py and stages.py."""
from __future__ import annotations

import dataclasses
import json
import time

from harness.config import fingerprint
from harness.claims import Claim, Planned
from harness.training.spec import apply_sets, build_spec
from harness.reproduce import lookup
from harness.tracking import Outcome, open_tracker


@dataclasses.dataclass
class Done:
    """One grid point's run: its outcome, or reused (a result already in the store), or held by
    another process sharing the plan (harness/reproduce/shared.py), to be asked for again."""

    planned: Planned
    run_id: str | None
    outcome: Outcome | None  # None: reused (or elsewhere)
    metrics: dict
    seconds: float
    elsewhere: bool = False

    @property
    def label(self) -> str:
        return "elsewhere" if self.elsewhere else "reused" if self.outcome is None else self.outcome.value


def held_elsewhere(planned: Planned) -> Done:
    return Done(planned, None, None, {}, 0.0, elsewhere=True)


def spec_for(claim: Claim, planned: Planned, *, device: str, uri: str, threads: int = 0):
    # A claim's hundreds of runs log the gradient-flow CSV only: its report draws the figures.
    sets = ["track.probe_figure=false"] + planned.sets + [
        f"train.device={device}", f"track.tracking_uri={uri}", f"track.experiment={claim.experiment}",
        f"train.threads={threads}"]
    return build_spec(apply_sets({}, sets)).validate()


def measured_fingerprint(planned: Planned) -> str:
    return fingerprint(planned.values)


def decide(runs, claim: Claim, planned: Planned, *, device: str, uri: str) -> lookup.Found:
    """lookup.find for one point of a claim's grid: only a run the report counts (this claim's
    budget; a tuning trial of the same configuration belongs to its study, not to the grid)."""
    tags = {"claim_budget": planned.tags["claim_budget"]}
    if not claim.trains:
        return lookup.find(runs, claim.experiment, measured_fingerprint(planned), tags)
    spec = spec_for(claim, planned, device=device, uri=uri)
    return lookup.find(runs, claim.experiment, spec.fingerprint(), tags, spec=spec, uri=uri)


def run_one(claim_name: str, planned: Planned, device: str, uri: str, command: str, threads: int,
            cells: tuple[str, ...] | None = None, resume: tuple[str, str] | None = None) -> Done:
    """One grid point, in this process or a pool worker (harness/reproduce/pool.py), which
    hears of the run as it starts and gets its status lines. `resume`: (run id, checkpoint
    file) of a killed run of this point (lookup.RESUME), continued in that same MLflow run.
    On a shared plan the point is done only under its lock, and what it needs is asked again
    once the lock is held (another process may have run it meanwhile)."""
    from harness.reproduce import shared

    if not shared.is_shared(uri):
        return run_point(claim_name, planned, device, uri, command, threads, cells, resume)
    from harness.claims import get
    from harness.tracking import open_runs

    claim = get(claim_name, cells)
    key = f"run:{claim.experiment}:{planned.tags.get('claim_budget', '')}:" + (
        spec_for(claim, planned, device=device, uri=uri).fingerprint() if claim.trains
        else measured_fingerprint(planned))
    with shared.holding(uri, key) as mine:
        if not mine:
            return held_elsewhere(planned)
        found = decide(open_runs(uri), claim, planned, device=device, uri=uri)
        if found.action == lookup.REUSE:
            return Done(planned, found.record.run_id, None, dict(found.record.metrics), 0.0)
        again = (found.record.run_id, str(found.checkpoint)) if found.action == lookup.RESUME else None
        return run_point(claim_name, planned, device, uri, command, threads, cells, again)


def run_point(claim_name: str, planned: Planned, device: str, uri: str, command: str, threads: int,
             cells: tuple[str, ...] | None, resume: tuple[str, str] | None) -> Done:
    import torch

    from harness.claims import get
    from harness.reproduce.worker import notify
    from harness.training import checkpoint
    from harness.training.progress import to_stderr
    from harness.training.train import train

    if threads:
        torch.set_num_threads(threads)
    claim = get(claim_name, cells)
    started = time.perf_counter()
    tags = {**planned.tags, "claim_command": command}
    tracker = open_tracker(uri, claim.experiment)
    if not claim.trains:
        import platform

        from harness.training.spec import git_commit, machine_name

        run_id = tracker.start(run_name=f"{claim.name}-{'-'.join(map(str, planned.values.values()))}",
                               tags={**tags, "fingerprint": measured_fingerprint(planned), "device": "cpu",
                                     "host": platform.node(), "machine": machine_name("cpu"),
                                     "harness_commit": git_commit()})
        tracker.log_params(planned.values)
        metrics = claim.measure(planned)
        tracker.log_metrics(metrics, 0)
        tracker.end(Outcome.FINISHED)
        return Done(planned, run_id, Outcome.FINISHED, metrics, time.perf_counter() - started)
    spec = spec_for(claim, planned, device=device, uri=uri, threads=threads)
    payload = None
    if resume is not None:
        payload = {**checkpoint.load(resume[1]), "run_id": resume[0]}
    point = f"{planned.tags.get('claim_grid', claim.name)}: {planned.tags.get('claim_point', '')}"

    def begun(run_id):
        notify("run", {"run_id": run_id, "uri": tracker.uri, "experiment": claim.experiment,
                       "fingerprint": spec.fingerprint(), "step": payload["step"] if payload else 0})

    def status(line):
        notify("line", f"{point}: {line}") or to_stderr(f"{point}: {line}")

    result = train(spec, tracker, progress=status, tags=tags, resume=payload, on_start=begun)
    return Done(planned, result.run_id, result.outcome, result.metrics, time.perf_counter() - started)


def check_data(claim: Claim, todo: list[Planned], *, device: str, uri: str) -> None:
    """Draw each distinct task's first validation batch here, before any run or worker exists:
    a data error (a missing archive, ...) stops the command with its one line, no run left."""
    seen = set()
    for planned in todo:
        spec = spec_for(claim, planned, device=device, uri=uri)
        key = (spec.task_name, json.dumps(spec.task.to_dict(), sort_keys=True, default=str))
        if key not in seen:
            seen.add(key)
            next(iter(spec.build_task().eval_batches("val", seed=spec.train.seed)), None)
