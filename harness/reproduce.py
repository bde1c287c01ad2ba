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
from harness.tracking import MLflowTracker, finished_run, resolve_uri


@dataclasses.dataclass
class Outcome:
    planned: Planned
    run_id: str | None
    status: str  # FINISHED, FAILED, KILLED or REUSED
    metrics: dict
    seconds: float


def spec_for(claim: Claim, planned: Planned, *, device: str, uri: str):
    sets = planned.sets + [f"train.device={device}", f"track.tracking_uri={uri}",
                           f"track.experiment={claim.experiment}"]
    return build_spec(apply_sets({}, sets)).validate()


def measured_fingerprint(planned: Planned) -> str:
    return hashlib.sha256(json.dumps(planned.values, sort_keys=True).encode()).hexdigest()[:16]


def run_one(claim_name: str, planned: Planned, device: str, uri: str, command: str, threads: int) -> Outcome:
    """One grid point, in this process or a worker process."""
    import torch

    from harness.claims import get
    from harness.train import train

    if threads:
        torch.set_num_threads(threads)
    claim = get(claim_name)
    started = time.perf_counter()
    tags = {**planned.tags, "claim_command": command}
    tracker = MLflowTracker(uri, claim.experiment)
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
        tracker.end("FINISHED")
        return Outcome(planned, run_id, "FINISHED", metrics, time.perf_counter() - started)
    spec = spec_for(claim, planned, device=device, uri=uri)
    result = train(spec, tracker, progress=False, tags=tags)
    return Outcome(planned, result.run_id, result.status, result.metrics, time.perf_counter() - started)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def reproduce(claim: Claim, budget: str, *, seeds: int | None, device: str, uri: str, jobs: int,
              command: str, report=print) -> list[Outcome]:
    uri = resolve_uri(uri)
    MLflowTracker(uri, claim.experiment)  # create the store and experiment before any worker races to
    plan = claim.plan(budget, seeds)
    outcomes: list[Outcome] = []
    todo = []
    for planned in plan:
        fingerprint = (spec_for(claim, planned, device=device, uri=uri).fingerprint() if claim.trains
                       else measured_fingerprint(planned))
        found = finished_run(uri, claim.experiment, fingerprint)
        if found:
            outcomes.append(Outcome(planned, found, "REUSED", {}, 0.0))
        else:
            todo.append(planned)
    report(f"{claim.name} ({budget}): {len(plan)} runs in the grid, {len(plan) - len(todo)} reused, "
           f"{len(todo)} to run" + (f" with {jobs} jobs" if jobs > 1 else ""))
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else 0
    done = len(plan) - len(todo)

    def show(outcome: Outcome) -> None:
        nonlocal done
        done += 1
        what = outcome.planned.tags["claim_point"]
        primary = next((f"{k} {val:.4g}" for k, val in outcome.metrics.items() if k.startswith("test_")), "")
        report(f"[{done}/{len(plan)}] {outcome.planned.tags['claim_grid']}: {what}: {outcome.status} "
               f"{primary} ({outcome.seconds:.1f} s)")

    if jobs <= 1:
        for planned in todo:
            outcome = run_one(claim.name, planned, device, uri, command, 0)
            outcomes.append(outcome)
            show(outcome)
            if outcome.status == "KILLED":
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
