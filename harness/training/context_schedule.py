"""When a run probes its context during training (track.context_points): kept apart from
context.py, which imports pandas, so that the training loop imports it only when probing."""
from __future__ import annotations


def context_steps(track, task, total: int) -> frozenset[int]:
    """The steps of the context probes during training (track.context_points > 1): total / 2^j
    for j = points-1 .. 1; the end-of-run probe is the last point."""
    if not (track.context_probe and track.context_points > 1 and hasattr(task, "context_problems")):
        return frozenset()
    return frozenset(s for j in range(1, track.context_points) if 0 < (s := round(total / 2 ** j)) < total)
