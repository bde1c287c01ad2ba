"""Run a claim's grid through the one training path; every run lands in MLflow tagged with the
claim. What each planned run needs is decided by harness/reproduce/lookup.py (a result is
reused, a killed run resumed from its checkpoint, anything else run), so an interrupted
`reproduce` continues where it stopped, to the metrics an uninterrupted one reaches.
The runs go through one Pool (harness/reproduce/pool.py) for every --jobs: Ctrl-C or SIGTERM
stops it, and no run starts after a run that ended killed."""
from __future__ import annotations

import os

from harness.claims import Claim, Planned
from harness.reproduce import lookup
from harness.reproduce.one_run import Done, check_data, decide, measured_fingerprint, run_one, spec_for
from harness.reproduce.pool import Call, Lost, Pool
from harness.reproduce.progress import Board, execute, interrupted
from harness.tracking import Outcome, open_runs, open_tracker, resolve_uri

__all__ = ["Done", "check_data", "decide", "interrupted", "measured_fingerprint", "reproduce", "run_one", "run_plan",
           "spec_for", "threads_for"]


def threads_for(jobs: int) -> int:
    """torch threads per worker: the cores shared among K > 1 workers; 0 (automatic) for one."""
    return max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else 0


def label_of(planned: Planned) -> str:
    return f"{planned.tags['claim_grid']}: {planned.tags['claim_point']}"


def as_done(planned: Planned, result) -> Done:
    """A call's result, or a Done for a call whose worker ended first (pool.Lost)."""
    if isinstance(result, Lost):
        return Done(planned, result.run and result.run["run_id"], Outcome(result.outcome), {}, 0.0)
    return result


def _primary(done: Done) -> str:
    return next((f" {k} {v:.4g}" for k, v in done.metrics.items() if k.startswith("test_")), "")


def run_plan(claim: Claim, plan: list[Planned], *, pool: Pool, device: str, uri: str, threads: int,
             command: str, report=print) -> list[Done]:
    """Reuse, resume or run every planned run on `pool`; no run starts after one ends killed."""
    runs, outcomes, todo = open_runs(uri), [], []
    for planned in plan:
        found = decide(runs, claim, planned, device=device, uri=uri)
        if found.action == lookup.REUSE:
            outcomes.append(Done(planned, found.record.run_id, None, {}, 0.0))
        else:
            todo.append((planned, (found.record.run_id, str(found.checkpoint)) if found.action == lookup.RESUME
                         else None))
    if not plan:
        return outcomes
    resumed = sum(r is not None for _, r in todo)
    report(f"{claim.name}: {len(plan)} runs planned, {len(plan) - len(todo)} reused, {resumed} to resume, "
           f"{len(todo) - resumed} to run" + (f" with {pool.jobs} jobs" if pool.jobs > 1 else ""))
    if not todo or pool.stopped:
        return outcomes
    board = Board(claim.name, len(plan), len(plan) - len(todo), pool.jobs, report)
    calls = [Call(run_one, (claim.name, p, device, uri, command, threads, claim.cells, r)) for p, r in todo]
    dones: dict[int, Done] = {}

    def ended(index, result):
        dones[index] = done = as_done(todo[index][0], result)
        return "elsewhere" if done.elsewhere else done.outcome, done.seconds, _primary(done)

    execute(pool, calls, [label_of(p) for p, _ in todo], board, ended=ended,
            stop_on=lambda result: isinstance(result, Lost) or result.outcome == Outcome.KILLED,
            again=lambda result: isinstance(result, Done) and result.elsewhere)
    return outcomes + list(dones.values())


def reproduce(claim: Claim, budget: str, *, seeds: int | None, device: str, uri: str, jobs: int,
              command: str, report=print, pool: Pool | None = None, plugins: tuple[str, ...] = ()) -> list[Done]:
    """Every run of the claim's budget: static grids, then tuning studies, the grids they tune,
    and the lag ladders (harness/reproduce/stages.py), on `pool` (default: a Pool of `jobs`
    workers for this claim). Stops early when interrupted (see `interrupted`)."""
    uri = resolve_uri(uri)
    open_runs(uri)  # checks the store; reading creates nothing
    plan = claim.plan(budget, seeds)
    # (a tuning whose lag comes from a pilot reads the data its pilot ladder reads, checked below)
    staged = ([Planned(t.values(c), {}) for t in claim.tunings(budget) if t.lag_from is None for c in t.cells[:1]]
              + [Planned(lad.values(c, lad.lags[0], 0), {}) for lad in claim.ladders(budget) for c in lad.cells[:1]])
    if claim.trains:
        check_data(claim, plan + staged, device=device, uri=uri)
    open_tracker(uri, claim.experiment).prepare()  # the store and experiment, before workers race to
    if pool is None:
        with Pool(jobs, threads=threads_for(jobs), plugins=plugins) as own:
            return reproduce(claim, budget, seeds=seeds, device=device, uri=uri, jobs=jobs, command=command,
                             report=report, pool=own)
    threads = pool.threads
    outcomes = run_plan(claim, plan, pool=pool, device=device, uri=uri, threads=threads, command=command,
                        report=report)
    if interrupted(outcomes, pool):
        return outcomes
    if claim.tunings(budget) or claim.ladders(budget):
        from harness.reproduce.stages import run_stages

        report(f"{claim.name} ({budget}): tuning studies, the grids they tune and the lag ladders")
        outcomes += run_stages(claim, budget, seeds=seeds, device=device, uri=uri, pool=pool, threads=threads,
                               command=command, report=report, run_plan=run_plan)
    return outcomes
