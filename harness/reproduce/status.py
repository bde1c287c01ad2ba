"""`reproduce CLAIM --status`: where a claim stands in the store, part by part, from the same
lookups the runner makes (one_run.decide for grid points, stages.find_step for ladder lags,
stages.chosen_values for tuning studies, at the lags their pilot ladders give), so it says what
the next `reproduce` would do.

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
from harness.reproduce.one_run import decide
from harness.reproduce.stages import chosen_values, find_step, ladder_step, pilot_labels, tuning_lags
from harness.tracking import open_runs, resolve_uri


def _part(kind: str, label: str) -> dict:
    return {"kind": kind, "label": label, "finished": 0, "diverged": 0, "killed": 0, "missing": 0, "next": []}


def _count(part: dict, found: lookup.Found, what: str) -> None:
    part[found.state] += 1
    if found.action == lookup.RESUME:
        part["next"].append(f"resume {what} (run {found.record.run_id[:8]})")
    elif found.action == lookup.RUN:
        part["next"].append(f"run {what}")


def _walk(runs, claim, budget, ladder, cell, seed, tuned, device, uri, part) -> dict[int, bool] | None:
    """One (cell, seed) chain as run_ladder would climb it; {lag: solved} when it is complete."""
    misses, solved = 0, {}
    for lag in ladder.lags:
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
    ladders, pilots = claim.ladders(budget), pilot_labels(claim, budget)

    def walk(ladder, tuned: dict) -> dict | None:
        """Count one ladder's chains; {(cell, seed): {lag: solved}} when every chain is complete."""
        part = _part("ladder", ladder.label)
        parts.append(part)
        chains = {(cell, seed): _walk(runs, claim, budget, ladder, cell, seed,
                                      tuned.get(ladder.tuned_by, {}).get(cell, {}), device, uri, part)
                  for cell in ladder.cells for seed in range(ladder.seeds)}
        return chains if all(chain is not None for chain in chains.values()) else None

    solved = {}
    for ladder in [lad for lad in ladders if lad.label in pilots]:
        chains = walk(ladder, {})
        if chains is not None:
            solved[ladder.label] = chains
    tuned, waiting = {}, set()
    for tuning in claim.tunings(budget):
        part = _part("tuning", tuning.label)
        parts.append(part)
        tuned[tuning.label] = {}
        if tuning.lag_from is not None and tuning.lag_from not in solved:
            part["missing"] += len(tuning.cells)
            part["next"].append(f"after pilot {tuning.lag_from}: tune {len(tuning.cells)} cells "
                                f"({tuning.trials} trials each)")
            waiting.add(tuning.label)
            continue
        lags = tuning_lags(claim, budget, tuning, solved)
        for cell in tuning.cells:
            chosen = chosen_values(uri, claim, budget, tuning, cell, lags.get(cell))
            if chosen is None:
                part["missing"] += 1
                at = f" at {tuning.lag_key}={lags[cell]}" if lags.get(cell) is not None else ""
                part["next"].append(f"tune variant={cell}{at} ({tuning.trials} trials)")
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
    for ladder in [lad for lad in ladders if lad.label not in pilots]:
        if ladder.tuned_by in waiting:
            part = _part("ladder", ladder.label)
            parts.append(part)
            part["next"].append(f"after tuning {ladder.tuned_by}: {len(ladder.cells)} cells x {ladder.seeds} seeds")
            continue
        walk(ladder, tuned)
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

