"""`reproduce CLAIM --status`: where a claim stands in the store, part by part, from the same
lookups the runner makes (runner.decide for grid points, stages.find_step for ladder lags,
stages.chosen_values for tuning studies), so it says what the next `reproduce` would do.

Per part: `finished`, `diverged` (results, reused), `killed` (resumable: a checkpoint is on
disk), `missing` (runs the next reproduce starts) and `next` (what it would do there). A tuning
study counts cells (finished: its choice is recorded). A ladder counts the runs its chains have
climbed; each unfinished chain adds its next lag (killed or missing); the runs above that are
decided as it climbs.
"""
from __future__ import annotations

import json

from harness.claims import Claim
from harness.reproduce import lookup
from harness.reproduce.runner import decide
from harness.reproduce.stages import chosen_values, find_step, ladder_step
from harness.tracking import open_runs, resolve_uri


def _part(kind: str, label: str) -> dict:
    return {"kind": kind, "label": label, "finished": 0, "diverged": 0, "killed": 0, "missing": 0, "next": []}


def _count(part: dict, found: lookup.Found, what: str) -> None:
    part[found.state] += 1
    if found.action == lookup.RESUME:
        part["next"].append(f"resume {what} (run {found.record.run_id[:8]})")
    elif found.action == lookup.RUN:
        part["next"].append(f"run {what}")


def _walk(runs, claim, budget, ladder, cell, seed, tuned, carried, device, uri, part) -> dict[int, bool] | None:
    """One (cell, seed) chain as run_ladder would climb it; {lag: solved} when it is complete."""
    misses, solved = 0, {}
    for lag in ladder.lags:
        if carried.get(lag):
            misses = 0
            continue
        found = find_step(runs, claim, ladder_step(claim, budget, ladder, cell, lag, seed, tuned),
                          device=device, uri=uri)
        if found.action != lookup.REUSE:
            _count(part, found, f"variant={cell} seed={seed} from length={lag}")
            return None
        part[found.state] += 1
        solved[lag] = claim.solved(found.record.metrics)
        misses = 0 if solved[lag] else misses + 1
        if misses >= ladder.stop_after:
            break
    return solved


def claim_status(claim: Claim, budget: str, *, seeds: int | None, device: str, uri: str) -> dict:
    """{"claim", "budget", "parts": [part, ...]} (part: see the module docstring)."""
    uri = resolve_uri(uri)
    runs, parts = open_runs(uri), []
    grids: dict[str, dict] = {}

    def grid_points(plan):
        for planned in plan:
            label = planned.tags["claim_grid"]
            if label not in grids:
                parts.append(grids.setdefault(label, _part("grid", label)))
            part = grids[label]
            _count(part, decide(runs, claim, planned, device=device, uri=uri), planned.tags["claim_point"])

    grid_points(claim.plan(budget, seeds))
    tuned, waiting = {}, set()
    for tuning in claim.tunings(budget):
        part = _part("tuning", tuning.label)
        parts.append(part)
        tuned[tuning.label] = {}
        for cell in tuning.cells:
            chosen = chosen_values(uri, claim, budget, tuning, cell)
            if chosen is None:
                part["missing"] += 1
                part["next"].append(f"tune variant={cell} ({tuning.trials} trials)")
                waiting.add(tuning.label)
            else:
                part["finished"] += 1
                tuned[tuning.label][cell] = chosen
    for grid in claim.grids(budget):
        if grid.tuned_by in waiting:
            part = _part("grid", grid.label)
            part["next"].append(f"after tuning {grid.tuned_by}: its {len(grid.points())} points")
            parts.append(part)
    if tuned and not waiting:
        labels = {g.label for g in claim.grids(budget) if g.tuned_by}
        grid_points([p for p in claim.plan(budget, seeds, tuned) if p.tags["claim_grid"] in labels])
    solved: dict[str, dict] = {}
    ladders = claim.ladders(budget)
    for ladder in [lad for lad in ladders if lad.budget_of is None] + [lad for lad in ladders if lad.budget_of]:
        part = _part("ladder", ladder.label)
        parts.append(part)
        if ladder.tuned_by in waiting or (ladder.budget_of and ladder.budget_of not in solved):
            part["next"].append(f"after {'tuning ' + ladder.tuned_by if ladder.tuned_by in waiting else ladder.budget_of}:"
                                f" {len(ladder.cells)} cells x {ladder.seeds} seeds")
            continue
        chains = {}
        for cell in ladder.cells:
            for seed in range(ladder.seeds):
                carried = solved.get(ladder.budget_of, {}).get((cell, seed), {}) if ladder.budget_of else {}
                chains[(cell, seed)] = _walk(runs, claim, budget, ladder, cell, seed,
                                             tuned.get(ladder.tuned_by, {}).get(cell, {}), carried, device, uri, part)
        if all(chain is not None for chain in chains.values()):
            solved[ladder.label] = chains
    return {"claim": claim.name, "budget": budget, "parts": parts}


def render(status: dict) -> str:
    lines = [f"{status['claim']} ({status['budget']}):"]
    todo = []
    for part in status["parts"]:
        counts = ", ".join(f"{part[k]} {k}" for k in ("finished", "diverged", "killed", "missing"))
        lines.append(f"  {part['kind']} {part['label']}: {counts}")
        todo += [f"{part['label']}: {what}" for what in part["next"]]
    if not todo:
        lines.append("  next reproduce: nothing to run (every run has a result)")
    else:
        lines.append(f"  next reproduce ({len(todo)}):")
        lines += [f"    {what}" for what in todo[:20]] + ([f"    ... and {len(todo) - 20} more"] if len(todo) > 20 else [])
    return "\n".join(lines)


def print_status(claim: Claim, budget: str, *, seeds: int | None, device: str, uri: str, as_json: bool) -> None:
    status = claim_status(claim, budget, seeds=seeds, device=device, uri=uri)
    print(json.dumps(status) if as_json else render(status))

