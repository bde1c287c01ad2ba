"""Run a claim's grid through the one training path; every run lands in MLflow tagged with the
claim, and a run already finished with the same configuration is reused, so an interrupted
`reproduce` resumes where it stopped."""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os

from harness.reproduce.one_run import Done, _init_worker, check_data, measured_fingerprint, run_one, spec_for
from harness.claims import Claim, Planned
from harness.tracking import Outcome, open_runs, open_tracker, resolve_uri

__all__ = ["Done", "check_data", "measured_fingerprint", "reproduce", "run_one", "spec_for"]


def run_plan(claim: Claim, plan: list[Planned], *, device: str, uri: str, jobs: int, threads: int,
             command: str, report=print) -> list[Done]:
    """Reuse or run every planned run (in `jobs` worker processes); stops at a KILLED run."""
    runs, outcomes, todo = open_runs(uri), [], []
    for planned in plan:
        fingerprint = (spec_for(claim, planned, device=device, uri=uri).fingerprint() if claim.trains
                       else measured_fingerprint(planned))
        # only a run the report counts (this claim's budget): a tuning trial of the same
        # configuration is in the store too, but it belongs to its study, not to the grid
        found = runs.find_result(claim.experiment, fingerprint, {"claim_budget": planned.tags["claim_budget"]})
        if found:
            outcomes.append(Done(planned, found.run_id, None, {}, 0.0))
        else:
            todo.append(planned)
    if not plan:
        return outcomes
    report(f"{claim.name}: {len(plan)} runs planned, {len(plan) - len(todo)} reused, {len(todo)} to run"
           + (f" with {jobs} jobs" if jobs > 1 else ""))
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
            outcome = run_one(claim.name, planned, device, uri, command, threads, cells=claim.cells)
            outcomes.append(outcome)
            show(outcome)
            if outcome.outcome == Outcome.KILLED:
                break
        return outcomes
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                                                initargs=(threads,)) as pool:
        futures = [pool.submit(run_one, claim.name, p, device, uri, command, threads, claim.cells) for p in todo]
        for future in concurrent.futures.as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            show(outcome)
    return outcomes


def reproduce(claim: Claim, budget: str, *, seeds: int | None, device: str, uri: str, jobs: int,
              command: str, report=print) -> list[Done]:
    """Every run of the claim's budget: static grids, then tuning studies, the grids they tune,
    and the lag ladders (harness/reproduce/stages.py). Finished runs are reused."""
    uri = resolve_uri(uri)
    open_runs(uri)  # checks the store; reading creates nothing
    plan = claim.plan(budget, seeds)
    staged = ([Planned(t.values(c), {}) for t in claim.tunings(budget) for c in t.cells[:1]]
              + [Planned(lad.values(c, lad.lags[0], 0), {}) for lad in claim.ladders(budget) for c in lad.cells[:1]])
    if claim.trains:
        check_data(claim, plan + staged, device=device, uri=uri)
    open_tracker(uri, claim.experiment).prepare()  # the store and experiment, before workers race to
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else 0
    outcomes = run_plan(claim, plan, device=device, uri=uri, jobs=jobs, threads=threads, command=command,
                        report=report)
    if any(o.outcome == Outcome.KILLED for o in outcomes):
        return outcomes
    if claim.tunings(budget) or claim.ladders(budget):
        from harness.reproduce.stages import run_stages

        report(f"{claim.name} ({budget}): tuning studies, the grids they tune and the lag ladders")
        outcomes += run_stages(claim, budget, seeds=seeds, device=device, uri=uri, jobs=jobs, threads=threads,
                               command=command, report=report, run_plan=run_plan)
    return outcomes
