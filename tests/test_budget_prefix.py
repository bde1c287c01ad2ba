"""Every budget from one run (the horizon claim, protocol v3): with a constant learning rate and
the geometric evaluation schedule, the run with budget B is the first B steps of the run with a
larger budget, so "solved within B" is "steps_to_solve <= B" of the largest run."""
from __future__ import annotations

import pytest
from helpers import tiny_spec

from harness.config import ConfigError
from harness.training.evaluation import eval_steps
from harness.training.train import train
from harness.tracking import MemoryTracker


def test_the_geometric_schedule_does_not_depend_on_the_budget_and_holds_every_doubling():
    large, small = eval_steps(25, 4, 6400), eval_steps(25, 4, 400)
    assert small == {s for s in large if s <= 400}
    assert {25 * 2 ** n for n in range(9)} <= large  # every budget of the grid is an evaluation
    steps = sorted(large)
    assert all(1.1 < b / a < 1.3 for a, b in zip(steps[8:], steps[9:])), "4 points per doubling, ratio 2^(1/4)"
    assert eval_steps(25, 0, 6400) is None


def _run(steps: int, tmp_path, variant: str, length: int):
    spec = tiny_spec(variant, "recall", steps=steps, hidden=16, task_options={"length": length},
                     train={"eval_every": 10, "evals_per_doubling": 4, "stop_when_solved": True,
                            "schedule": "constant", "lr": 1e-2, "log_every": 5},
                     track={"checkpoint_dir": str(tmp_path), "probe_points": 2})
    tracker = MemoryTracker()
    result = train(spec, tracker, progress=False)
    return result, tracker


# lstm at lag 6 solves at step 160, after the short budget; simple_rnn at lag 4 at step 80,
# exactly the short budget (solved within B includes B)
@pytest.mark.parametrize("variant,length", [("lstm", 6), ("simple_rnn", 4)])
def test_a_run_with_budget_b_is_the_prefix_of_the_run_with_the_largest_budget(variant, length, tmp_path):
    """The equivalence the budget curve rests on: same seed, constant lr; the short run stops at
    its budget, the long one goes on (or stops when solved). Losses, validation metrics and
    solved / steps_to_solve agree wherever both ran; the probes (at the start and the end of
    each run, so at different steps) take nothing from the training stream."""
    short, short_log = _run(80, tmp_path / "a", variant, length)
    long, long_log = _run(640, tmp_path / "b", variant, length)
    for metric in ("train_loss", "val_accuracy"):
        a, b = short_log.history(metric), long_log.history(metric)
        assert a, metric
        assert a == [(step, value) for step, value in b if step <= 80], metric
    evals = sorted(step for step, _ in long_log.history("val_accuracy"))
    assert set(evals) <= eval_steps(10, 4, 640) | {640}
    if long.metrics["solved"] and long.metrics["steps_to_solve"] <= 80:
        assert short.metrics["solved"] == 1.0 and short.metrics["steps_to_solve"] == long.metrics["steps_to_solve"]
    else:
        assert short.metrics["solved"] == 0.0
    assert long.metrics["solved"] == 1.0, "the long run solves (else the test shows less than it should)"


def test_the_schedule_needs_a_first_step():
    with pytest.raises(ConfigError, match="train.evals_per_doubling needs train.eval_every"):
        tiny_spec("lstm", train={"eval_every": 0, "evals_per_doubling": 4}).validate()


def test_the_schedule_off_leaves_a_runs_fingerprint_as_before():
    """An option added later, at its neutral value, does not change the identity of a result."""
    plain = tiny_spec("lstm")
    assert plain.fingerprint() == tiny_spec("lstm", train={"evals_per_doubling": 0}).fingerprint()
    assert plain.fingerprint() != tiny_spec("lstm", train={"eval_every": 3, "evals_per_doubling": 4}).fingerprint()
    assert "evals_per_doubling" in plain.to_dict()["train"]
