"""Running a claim's adaptive stages (harness/claims/plans.py): tuning studies, then lag ladders.

Pilot ladders (those a tuning takes its lags from) run first, untuned; then tuning: for every
cell, one Optuna study of `trials` trials (the sweep machinery of
harness/sweep/study.py: queue, journal storage beside the store, a seeded TPE sampler in one process,
so the study is reproducible) whose objective is a metric every run logs; the best trial's
values are recorded as one MLflow run per cell (`claim_stage` = tuning), which the ladders and
the report read; a tuning with `lag_from` runs each cell at the largest lag its pilot solved
(plans.tuning_lag). A ladder is one chain per (cell, seed), climbing its lags in order in one
worker process. Each run is looked up as the grids' are (harness/reproduce/lookup.py: a result
reused, a killed run resumed from its checkpoint), so an interrupted `reproduce` continues where
it stopped. A tuning trial killed mid-run fails; the next reproduce tops its study up again.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from harness.config import fingerprint
from harness.claims import Claim, Planned, Tuning
from harness.claims.plans import tuning_lag
from harness.device import resolve_device
from harness.reproduce import lookup
from harness.reproduce.one_run import Done, run_point, held_elsewhere, spec_for
from harness.reproduce.pool import Call, Lost, Pool
from harness.reproduce.worker import notify
from harness.reproduce.progress import Board, execute, interrupted
from harness.tracking import Outcome, local_dir, open_runs, open_tracker

TUNING, LADDER = "tuning", "ladder"


def _tags(claim: Claim, budget: str, label: str, stage: str, point: str) -> dict[str, str]:
    return {"claim": claim.name, "claim_budget": budget, "claim_grid": label, "claim_stage": stage,
            "claim_point": point}


def journal_path(uri: str) -> Path:
    """The Optuna journal of a claim's tuning studies: beside a local store, else here."""
    return (local_dir(uri) or Path.cwd()) / "optuna-claims.journal"


def chosen_values(uri: str, claim: Claim, budget: str, tuning: Tuning, cell: str, lag: int | None = None
                  ) -> dict | None:
    """The values a finished tuning chose for `cell` (None: not tuned yet); `lag`: the cell's
    tuning lag when the tuning takes it from a pilot."""
    fp = tuning_fingerprint(claim, budget, tuning, cell, lag)
    for record in open_runs(uri).records(claim.experiment, {"fingerprint": fp}):
        if record.outcome == Outcome.FINISHED:
            return {key: json.loads(value) for key, value in record.params.items() if key in tuning.space}
    return None


def tuning_fingerprint(claim: Claim, budget: str, tuning: Tuning, cell: str, lag: int | None = None) -> str:
    return fingerprint({"claim": claim.name, "budget": budget, "tuning": tuning.label, "cell": cell,
                         "values": tuning.values(cell, lag), "space": tuning.space, "trials": tuning.trials,
                         "metric": tuning.metric, "seed": tuning.seed})


def run_tuning(claim_name: str, cells: tuple, budget: str, label: str, cell: str, lag: int | None, device: str,
               uri: str, command: str, threads: int) -> Done:
    """One cell's tuning study, to its `trials` trials; records the chosen values as a run. On a
    shared plan (harness/reproduce/shared.py) the study is one unit: run under its lock, and not
    at all when its choice is recorded by the time the lock is held."""
    from harness import claims
    from harness.reproduce import shared

    claim = claims.get(claim_name, cells)
    tuning = next(t for t in claim.tunings(budget) if t.label == label)
    with shared.holding(uri, f"tuning:{tuning_fingerprint(claim, budget, tuning, cell, lag)}") as mine:
        if not mine:
            return held_elsewhere(tuning_planned(claim, budget, tuning, cell, lag))
        chosen = chosen_values(uri, claim, budget, tuning, cell, lag)
        if chosen is not None:
            return Done(tuning_planned(claim, budget, tuning, cell, lag), None, None, {}, 0.0)
        return _run_tuning(claim_name, cells, budget, label, cell, lag, device, uri, command, threads)


def _run_tuning(claim_name: str, cells: tuple, budget: str, label: str, cell: str, lag: int | None, device: str,
                uri: str, command: str, threads: int) -> Done:
    import time

    from harness import claims
    from harness.sweep.settings import sweep_settings
    from harness.sweep.study import prepare, run_worker
    from harness.sweep.summary import lowest

    started = time.perf_counter()
    claim = claims.get(claim_name, cells)
    tuning = next(t for t in claim.tunings(budget) if t.label == label)
    planned = tuning_planned(claim, budget, tuning, cell, lag)
    spec = spec_for(claim, planned, device=device, uri=uri, threads=threads)
    name = f"{claim.experiment}-{budget}-{label}-{cell}" + (f"-L{lag}" if lag is not None else "")  # a new lag: a new study
    settings = sweep_settings(spec, trials=tuning.trials, study=name, storage=str(journal_path(uri)),
                              space=dict(tuning.space), metric=tuning.metric, pruner="none", seed=tuning.seed)
    prepare(settings, fail_running=True)
    try:
        run_worker(settings, progress=False, threads=threads)
    except KeyboardInterrupt:  # a trial's run was killed: its trial failed; the next reproduce tops the study up
        return Done(planned, None, Outcome.KILLED, {}, time.perf_counter() - started)
    best = lowest(settings.storage, name)
    if best is None:
        raise RuntimeError(f"tuning study {name} finished no trial")
    tracker = open_tracker(uri, claim.experiment)
    run_id = tracker.start(run_name=f"{name}-choice", tags={
        **spec.tags(resolve_device(spec.train.device)), **planned.tags, "claim_command": command,
        "optuna.study": name, "fingerprint": tuning_fingerprint(claim, budget, tuning, cell, lag)})
    tracker.log_params({key: json.dumps(best.params[key]) for key in tuning.space if key in best.params})
    if lag is not None:
        tracker.log_params({tuning.lag_key: lag, "tuning.lag_from": tuning.lag_from})
    tracker.log_params({"model.variant": cell, "tuning.metric": tuning.metric, "tuning.trials": tuning.trials,
                        "tuning.space": json.dumps(dict(tuning.space), sort_keys=True), "tuning.best_trial": best.trial})
    metrics = {"tuning_best": best.value, "tuning_trials": best.finished}
    metrics.update({f"tuning_{k}": v for k, v in best.numbers.items()})
    tracker.log_metrics(metrics, 0)
    tracker.end(Outcome.FINISHED)
    return Done(planned, run_id, Outcome.FINISHED, metrics, time.perf_counter() - started)


def tuning_planned(claim: Claim, budget: str, tuning: Tuning, cell: str, lag: int | None) -> Planned:
    point = f"variant={cell}" + (f" {tuning.lag_key.split('.')[-1]}={lag}" if lag is not None else "")
    return Planned(tuning.values(cell, lag), _tags(claim, budget, tuning.label, TUNING, point))


def tuning_lags(claim: Claim, budget: str, tuning: Tuning, pilots: dict[str, dict]) -> dict[str, int | None]:
    """cell -> the lag it is tuned at (None for every cell of a tuning without a pilot). `pilots`:
    pilot label -> solved_map of its runs; a cell missing from it is not planned yet."""
    if tuning.lag_from is None:
        return {cell: None for cell in tuning.cells}
    ladder = next(lad for lad in claim.ladders(budget) if lad.label == tuning.lag_from)
    solved = pilots.get(tuning.lag_from, {})
    return {cell: tuning_lag(solved[(cell, 0)], ladder.lags) for cell in tuning.cells if (cell, 0) in solved}


def pilot_labels(claim: Claim, budget: str) -> set[str]:
    return {t.lag_from for t in claim.tunings(budget) if t.lag_from}


def ladder_step(claim: Claim, budget: str, ladder, cell: str, lag: int, seed: int, tuned: dict) -> Planned:
    return Planned(ladder.values(cell, lag, seed, tuned),
                   _tags(claim, budget, ladder.label, LADDER, f"variant={cell} length={lag} seed={seed}"))


def find_step(runs, claim: Claim, planned: Planned, *, device: str, uri: str) -> lookup.Found:
    """lookup.find for one lag of a ladder (any ladder run with its configuration counts)."""
    spec = spec_for(claim, planned, device=device, uri=uri)
    return lookup.find(runs, claim.experiment, spec.fingerprint(), {"claim_stage": LADDER}, spec=spec, uri=uri)


def run_ladder(claim_name: str, cells: tuple, budget: str, label: str, cell: str, seed: int, tuned: dict,
               device: str, uri: str, command: str, threads: int) -> list[Done]:
    """One (cell, seed) ladder: its lags in order until `stop_after` unsolved in a row. On a
    shared plan the chain is one unit, climbed under its lock (each lag looked up as usual)."""
    from harness import claims
    from harness.reproduce import shared

    claim = claims.get(claim_name, cells)
    ladder = next(lad for lad in claim.ladders(budget) if lad.label == label)
    key = f"chain:{claim.experiment}:{budget}:{label}:{cell}:{seed}:{fingerprint(dict(tuned))}"
    with shared.holding(uri, key) as mine:
        if not mine:
            return [held_elsewhere(ladder_step(claim, budget, ladder, cell, ladder.lags[0], seed, tuned))]
        return _climb(claim, budget, ladder, cell, seed, tuned, device, uri, command, threads, cells)


def _climb(claim, budget, ladder, cell, seed, tuned, device, uri, command, threads, cells) -> list[Done]:
    claim_name, label = claim.name, ladder.label
    runs, out, misses = open_runs(uri), [], 0
    for lag in ladder.lags:
        planned = ladder_step(claim, budget, ladder, cell, lag, seed, tuned)
        found = find_step(runs, claim, planned, device=device, uri=uri)
        if found.action == lookup.REUSE:
            done = Done(planned, found.record.run_id, None, {**found.record.metrics, "outcome": found.record.outcome},
                        0.0)
        else:
            resume = (found.record.run_id, str(found.checkpoint)) if found.action == lookup.RESUME else None
            done = run_point(claim_name, planned, device, uri, command, threads, cells, resume)  # the chain's lock
        out.append(done)
        line = (f"  {label}: {planned.tags['claim_point']}: {done.label}"
                f"{' solved' if claim.solved(done.metrics) else ' unsolved'} ({done.seconds:.1f} s)")
        notify("report", line) or print(line, flush=True)
        if done.outcome == Outcome.KILLED:
            break
        misses = 0 if claim.solved(done.metrics) else misses + 1
        if misses >= ladder.stop_after:
            break
    return out


def solved_map(claim: Claim, done: list[Done], label: str) -> dict[tuple[str, int], dict[int, bool]]:
    """(cell, seed) -> {lag: solved} of one ladder's runs."""
    out: dict = {}
    for d in done:
        v = d.planned.values
        if d.planned.tags["claim_grid"] == label:
            out.setdefault((v["model.variant"], int(v["train.seed"])), {})[int(v[_lag_key(claim, label)])] = \
                claim.solved(d.metrics)
    return out


def _lag_key(claim: Claim, label: str) -> str:
    return next(lad.lag_key for budget in ("smoke", "quick", "full") for lad in claim.ladders(budget)
                if lad.label == label)


def run_stages(claim: Claim, budget: str, *, seeds: int | None, device: str, uri: str, pool: Pool, threads: int,
               command: str, report: Callable[[str], None], run_plan) -> list[Done]:
    """The pilot ladders, every tuning (at the lags the pilots give), the grids they tune (through
    `run_plan`, runner.py's), then every other ladder, on `pool`; stops when the pool is stopped
    or a run ends killed."""
    results: list[Done] = []

    def gather(title: str, calls: list[Call], labels: list[str], planned: list[Planned]) -> list:
        """The calls' results in the order of `calls` (lists of Done for ladder chains)."""
        board, out = Board(title, len(calls), 0, pool.jobs, report), {}

        def ended(index, result):
            if isinstance(result, Lost):
                result = Done(planned[index], result.run and result.run["run_id"], Outcome(result.outcome), {}, 0.0)
            out[index] = result
            chain = result if isinstance(result, list) else [result]
            worst = next((d.outcome for d in chain if d.outcome in (Outcome.KILLED, Outcome.CRASHED)),
                         chain[-1].outcome if chain else None)
            return "elsewhere" if elsewhere(result) else worst, sum(d.seconds for d in chain), ""

        def elsewhere(result):
            chain = result if isinstance(result, list) else [result]
            return not isinstance(result, Lost) and any(d.elsewhere for d in chain)

        def killed(result):
            chain = result if isinstance(result, list) else [result]
            return isinstance(result, Lost) or any(d.outcome == Outcome.KILLED for d in chain)

        if calls and not pool.stopped:
            report(f"{title}: {len(calls)} to run" + (f" with {pool.jobs} jobs" if pool.jobs > 1 else ""))
            execute(pool, calls, labels, board, ended=ended, stop_on=killed, again=elsewhere)
        return [out[i] for i in sorted(out)]

    def flat(items: list) -> list[Done]:
        return [d for item in items for d in (item if isinstance(item, list) else [item])]

    def run_ladders(ladders: list, tuned: dict) -> bool:
        """Every chain of `ladders`; False when interrupted."""
        nonlocal results
        for ladder in ladders:
            chains = [(cell, seed) for cell in ladder.cells for seed in range(ladder.seeds)]
            calls = [Call(run_ladder, (claim.name, claim.cells, budget, ladder.label, cell, seed,
                                       tuned.get(ladder.tuned_by, {}).get(cell, {}), device, uri, command, threads))
                     for cell, seed in chains]
            first = [Planned(ladder.values(cell, ladder.lags[0], seed), _tags(claim, budget, ladder.label, LADDER,
                                                                               f"variant={cell} seed={seed}"))
                     for cell, seed in chains]
            by_label[ladder.label] = flat(gather(f"{ladder.label} (ladder chains)", calls,
                                                 [f"{ladder.label}: variant={c} seed={s}" for c, s in chains], first))
            results += by_label[ladder.label]
            if interrupted(results, pool):
                return False
        return True

    ladders, pilots = claim.ladders(budget), pilot_labels(claim, budget)
    by_label: dict[str, list[Done]] = {}
    if not run_ladders([lad for lad in ladders if lad.label in pilots], {}):
        return results
    solved = {label: solved_map(claim, by_label[label], label) for label in pilots}
    tuned: dict[str, dict[str, dict]] = {}
    for tuning in claim.tunings(budget):
        lags = tuning_lags(claim, budget, tuning, solved)
        todo = [cell for cell in tuning.cells if cell in lags
                and chosen_values(uri, claim, budget, tuning, cell, lags[cell]) is None]
        done = gather(f"{tuning.label} (tuning)",
                      [Call(run_tuning, (claim.name, claim.cells, budget, tuning.label, cell, lags[cell], device, uri,
                                         command, threads)) for cell in todo],
                      [f"{tuning.label}: variant={cell}" for cell in todo],
                      [tuning_planned(claim, budget, tuning, cell, lags[cell]) for cell in todo])
        for d in done:
            if d.outcome == Outcome.FINISHED:
                report(f"tuned {d.planned.tags['claim_point']}: {d.metrics} ({d.seconds:.1f} s)")
        results += done
        if interrupted(results, pool):
            return results
        tuned[tuning.label] = {cell: chosen_values(uri, claim, budget, tuning, cell, lags.get(cell)) or {}
                               for cell in tuning.cells}
        report(f"{tuning.label}: chosen " + "; ".join(
            f"{c}: {v}" + (f" at {tuning.lag_key}={lags[c]}" if lags.get(c) is not None else "")
            for c, v in tuned[tuning.label].items()))
    labels = {g.label for g in claim.grids(budget) if g.tuned_by}
    plan = [p for p in claim.plan(budget, seeds, tuned) if p.tags["claim_grid"] in labels]
    results += run_plan(claim, plan, pool=pool, device=device, uri=uri, threads=threads, command=command,
                        report=report)
    if interrupted(results, pool):
        return results
    run_ladders([lad for lad in ladders if lad.label not in pilots], tuned)
    return results
