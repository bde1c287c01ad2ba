"""Run a claim's grid through the one training path; every run lands in MLflow tagged with the
claim, and a run already finished with the same configuration is reused, so an interrupted
`reproduce` resumes where it stopped."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import multiprocessing
import os
import time

from harness.claims import Claim, Planned
from harness.spec import apply_sets, build_spec
from harness.tracking import Outcome, open_runs, open_tracker, resolve_uri


@dataclasses.dataclass
class Done:
    """One grid point's run: its outcome, or reused (a result already in the store)."""

    planned: Planned
    run_id: str | None
    outcome: Outcome | None  # None: reused
    metrics: dict
    seconds: float

    @property
    def label(self) -> str:
        return "reused" if self.outcome is None else self.outcome.value


def spec_for(claim: Claim, planned: Planned, *, device: str, uri: str, threads: int = 0):
    sets = planned.sets + [f"train.device={device}", f"track.tracking_uri={uri}",
                           f"track.experiment={claim.experiment}", f"train.threads={threads}"]
    return build_spec(apply_sets({}, sets)).validate()


def measured_fingerprint(planned: Planned) -> str:
    return hashlib.sha256(json.dumps(planned.values, sort_keys=True).encode()).hexdigest()[:16]


def run_one(claim_name: str, planned: Planned, device: str, uri: str, command: str, threads: int) -> Done:
    """One grid point, in this process or a worker process."""
    import torch

    from harness.claims import get
    from harness.train import train

    if threads:
        torch.set_num_threads(threads)
    claim = get(claim_name)
    started = time.perf_counter()
    tags = {**planned.tags, "claim_command": command}
    tracker = open_tracker(uri, claim.experiment)
    if not claim.trains:
        import platform

        from harness.spec import git_commit, machine_name

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
    result = train(spec, tracker, progress=False, tags=tags)
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


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def reproduce(claim: Claim, budget: str, *, seeds: int | None, device: str, uri: str, jobs: int,
              command: str, report=print) -> list[Done]:
    uri = resolve_uri(uri)
    runs = open_runs(uri)  # checks the store; reading creates nothing
    plan = claim.plan(budget, seeds)
    outcomes: list[Done] = []
    todo = []
    for planned in plan:
        fingerprint = (spec_for(claim, planned, device=device, uri=uri).fingerprint() if claim.trains
                       else measured_fingerprint(planned))
        found = runs.find_result(claim.experiment, fingerprint)
        if found:
            outcomes.append(Done(planned, found, None, {}, 0.0))
        else:
            todo.append(planned)
    if claim.trains:
        check_data(claim, todo, device=device, uri=uri)
    open_tracker(uri, claim.experiment).prepare()  # the store and experiment, before workers race to
    report(f"{claim.name} ({budget}): {len(plan)} runs in the grid, {len(plan) - len(todo)} reused, "
           f"{len(todo)} to run" + (f" with {jobs} jobs" if jobs > 1 else ""))
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else 0
    done = len(plan) - len(todo)

    def show(outcome: Done) -> None:
        nonlocal done
        done += 1
        what = outcome.planned.tags["claim_point"]
        primary = next((f"{k} {val:.4g}" for k, val in outcome.metrics.items() if k.startswith("test_")), "")
        report(f"[{done}/{len(plan)}] {outcome.planned.tags['claim_grid']}: {what}: {outcome.label} "
               f"{primary} ({outcome.seconds:.1f} s)")

    if jobs <= 1:
        for planned in todo:
            outcome = run_one(claim.name, planned, device, uri, command, 0)
            outcomes.append(outcome)
            show(outcome)
            if outcome.outcome == Outcome.KILLED:
                break
        return outcomes
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                                                initargs=(threads,)) as pool:
        futures = [pool.submit(run_one, claim.name, p, device, uri, command, threads) for p in todo]
        for future in concurrent.futures.as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            show(outcome)
    return outcomes
