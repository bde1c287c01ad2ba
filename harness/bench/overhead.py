"""The harness's own cost per run: a tracked run against the same run with tracking off.

Tracked: MLflow on a temporary SQLite store (the store check, run creation, parameters,
metrics, gradient probes, gate statistics, the gradient-flow figure, artifacts). Untracked:
the same training with tracking, probes and gate statistics off. Both are the default `lstm`
run on `recall` shortened to `steps` steps; with few steps the difference is the fixed cost
per run (what a short run, a sweep trial or a claim point pays), with many it adds the
per-step logging. Pairs are interleaved, alternating which of the two goes first, so that
drift of a shared machine hits both alike; one untimed pair first pays the imports and the
creation of the store's schema, which a store pays once, not per run.
"""
from __future__ import annotations

import statistics
import tempfile
import time

import torch

OVERHEAD_ONLY_STEPS = 20  # --overhead-only: a short run, so the difference is the fixed cost


def harness_overhead(steps: int, pairs: int, device: str, quick: bool) -> dict:
    """{'fixed_s': median over pairs of (tracked - untracked) seconds, 'fixed_min_s',
    'fixed_max_s', 'tracked_s', 'untracked_s' (medians), 'ratio' (median tracked/untracked)
    with its range, 'steps', 'pairs'}. `quick` shrinks the validation and test sets to 128."""
    from harness.training.spec import build_spec
    from harness.tracking import open_tracker
    from harness.training.train import train

    threads = torch.get_num_threads()  # a run sets its own; the caller's count is restored
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = {"model": {"variant": "lstm"}, "train": {"steps": steps, "device": device}}
            if quick:
                base["task"] = {"val_size": 128, "test_size": 128}
            on = build_spec({**base, "track": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db",
                                               "checkpoint_dir": f"{tmp}/on", "experiment": "bench-overhead"}})
            off = build_spec({**base, "track": {"enabled": False, "probe": False, "gate_stats": False,
                                                "checkpoint_dir": f"{tmp}/off"}})

            def run(spec) -> float:
                start = time.perf_counter()  # the store check is part of what a tracked run pays
                tracker = open_tracker(spec.track.tracking_uri, spec.experiment, enabled=spec.track.enabled)
                train(spec, tracker, progress=False)
                return time.perf_counter() - start

            run(off), run(on)  # untimed: imports, the MLflow schema, caches
            timed = []  # (tracked, untracked) seconds, alternating which goes first
            for i in range(pairs):
                first, second = (on, off) if i % 2 else (off, on)
                a, b = run(first), run(second)
                timed.append((a, b) if first is on else (b, a))
    finally:
        torch.set_num_threads(threads)
    fixed = sorted(t - u for t, u in timed)
    ratios = sorted(t / u for t, u in timed)
    return {"steps": steps, "pairs": pairs,
            "tracked_s": round(statistics.median(t for t, _ in timed), 3),
            "untracked_s": round(statistics.median(u for _, u in timed), 3),
            "fixed_s": round(statistics.median(fixed), 3), "fixed_min_s": round(fixed[0], 3),
            "fixed_max_s": round(fixed[-1], 3), "ratio": round(statistics.median(ratios), 4),
            "ratio_min": round(ratios[0], 4), "ratio_max": round(ratios[-1], 4)}
