"""What a run measures on a split: the task's metrics over its validation or test set, and
how close validation came to the task's success criterion."""
from __future__ import annotations

import math

import torch

from harness.training.model import SequenceModel


def eval_steps(first: int, per_doubling: int, total: int) -> frozenset[int] | None:
    """The steps of a geometric evaluation schedule, round(first * 2^(j / per_doubling)) for
    j = 0, 1, ... up to `total` (None: per_doubling 0, evaluate every `first` steps). The points
    do not depend on `total`, so the run with budget B evaluates at exactly the steps the run
    with a larger budget evaluates at up to B: with a constant learning rate it is that run's
    prefix, and `steps_to_solve` (the first solving evaluation) is the same in both. With first
    = 25 and 4 per doubling the points include every 25 * 2^n (400, 800, ..., 6400)."""
    if per_doubling <= 0:
        return None
    out, j = set(), 0
    while (step := round(first * 2 ** (j / per_doubling))) <= total:
        out.add(step)
        j += 1
    return frozenset(out)


@torch.no_grad()
def evaluate(model: SequenceModel, task, split: str, seed: int, device) -> dict[str, float]:
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count, state = 0, None
    for batch in task.eval_batches(split, seed=seed, device=device):
        logits, final = model(batch, state=state)
        state = final if task.stateful else None  # a stream's chunks continue one another
        for key, values in task.metrics(logits, batch).items():
            sums[key] = sums.get(key, 0.0) + values.sum().item()
        count += len(batch)
    model.train(was_training)
    return task.summarise({key: total / count for key, total in sums.items()})


def criterion_of(task):
    """The task's success criterion, or None for a task that declares none (a plug-in may not)."""
    try:
        return task.success()
    except NotImplementedError:
        return None


def baseline_of(task) -> dict[str, float]:
    """The task's memoryless baseline metrics, or {} for a task that states none (a plug-in may not)."""
    try:
        return task.baseline()
    except NotImplementedError:
        return {}


def progress(task, criterion, metrics: dict[str, float]) -> float:
    """How far validation got from the memoryless baseline (0) to the criterion (1), clipped;
    0 when the task states no baseline for the criterion's metric."""
    base = baseline_of(task).get(criterion.metric)
    value = metrics[criterion.metric]
    if base is None or base == criterion.threshold or not math.isfinite(value):
        return 0.0
    return min(1.0, max(0.0, (value - base) / (criterion.threshold - base)))
