"""The one training path: every variant on every synthetic task, reproducibility,
divergence, early stopping, resume, gradient-flow and gate instrumentation."""
from __future__ import annotations

import dataclasses
import math
import signal

import numpy as np
import pytest
import torch
from helpers import synthetic_tasks, tiny_spec
from torch import nn

import tasks
import variants
from harness.training import probes
from harness.training.checkpoint import load
from harness.training.outcomes import StopRun
from harness.training.train import train
from harness.tracking import MemoryTracker, Outcome
from variants import Cell, Recurrent


@pytest.mark.parametrize("variant", variants.available())
@pytest.mark.parametrize("task", synthetic_tasks())
def test_every_variant_trains_on_every_synthetic_task(variant, task, tmp_path):
    small = {"length": 8} if task not in ("temporal_order", "frequency") else {"length": 20}
    spec = tiny_spec(variant, task, steps=4, task_options=small, track={"checkpoint_dir": str(tmp_path)})
    tracker = MemoryTracker()
    result = train(spec, tracker, progress=False)
    assert result.outcome is Outcome.FINISHED, result.reason
    assert tracker.status == "FINISHED" and tracker.tags["outcome"] == "finished"
    primary = tasks_primary(task)
    assert math.isfinite(result.metrics[f"test_{primary}"])
    assert "test_accuracy" in result.metrics and "gradient_horizon" in result.metrics
    assert result.metrics[f"baseline_{primary}"] == pytest.approx(tasks.get(task)(
        tasks.get(task).Options.from_mapping({k: str(v) for k, v in small.items()})).baseline()[primary])
    assert tracker.history("train_loss"), "the training loss was logged"
    assert {"config.toml", "model_state_dict.pt", "gradient_flow.csv", "gradient_flow.png"} <= set(tracker.artifacts)


def tasks_primary(name):
    import tasks

    return tasks.get(name).primary_metric


def test_same_seed_same_metrics_and_different_seed_differs(tmp_path):
    track = {"checkpoint_dir": str(tmp_path)}
    a = train(tiny_spec("gru", steps=20, track=track), progress=False)
    b = train(tiny_spec("gru", steps=20, track=track), progress=False)
    c = train(tiny_spec("gru", steps=20, track=track, train={"seed": 1}), progress=False)
    assert a.metrics == b.metrics
    assert a.metrics != c.metrics


def test_divergence_fails_the_run_with_a_reason(tmp_path):
    # Adam moves every weight by ~lr per step: predictions ~1e31 square to inf in the MSE
    spec = tiny_spec("simple_rnn", "adding", steps=30, task_options={"length": 8},
                     train={"lr": 1e30, "clip": 0.0, "log_every": 1}, track={"checkpoint_dir": str(tmp_path)})
    tracker = MemoryTracker()
    result = train(spec, tracker, progress=False)
    assert result.outcome is Outcome.DIVERGED
    assert tracker.status == "FAILED" and tracker.tags["outcome"] == "diverged"
    assert result.reason and tracker.tags["failure_reason"] == result.reason  # the human text
    assert not any(k.startswith("test_") for k, _, _ in tracker.metrics), "no silent NaN test metric"


def test_a_run_reports_the_path_training_used_not_the_probes(tmp_path):
    """Divergence found at a validation, after the gate statistics ran the explicit path:
    the result names the path the training steps used."""
    spec = tiny_spec("lstm", "adding", steps=30, task_options={"length": 8}, model={"path": "fused"},
                     train={"lr": 1e30, "clip": 0.0, "log_every": 1000, "eval_every": 5},
                     track={"checkpoint_dir": str(tmp_path)})
    result = train(spec, MemoryTracker(), progress=False)
    assert result.outcome is Outcome.DIVERGED and "validation" in result.reason and result.steps == 5
    assert result.path == "fused"
    fast = train(dataclasses.replace(spec, model=spec.model.replace(path="fast")), MemoryTracker(), progress=False)
    assert fast.outcome is Outcome.DIVERGED and fast.path == "fast"


def test_report_callback_can_stop_a_run_as_pruned(tmp_path):
    def report(step, metrics):
        raise StopRun(Outcome.PRUNED, f"pruned at step {step}")

    tracker = MemoryTracker()
    result = train(tiny_spec(steps=10, track={"checkpoint_dir": str(tmp_path)}), tracker, report=report, progress=False)
    assert result.outcome is Outcome.PRUNED and result.reason == "pruned at step 5"
    assert tracker.status == "KILLED" and tracker.tags["stop_reason"] == "pruned at step 5"
    assert tracker.tags["outcome"] == "pruned"


def test_an_exception_is_recorded_as_a_crash_and_raised(tmp_path):
    def report(step, metrics):
        raise RuntimeError("the callback broke")

    tracker = MemoryTracker()
    with pytest.raises(RuntimeError, match="the callback broke"):
        train(tiny_spec(steps=10, track={"checkpoint_dir": str(tmp_path)}), tracker, report=report, progress=False)
    assert tracker.outcome is Outcome.CRASHED and tracker.status == "FAILED"
    assert tracker.tags["failure_reason"] == "RuntimeError: the callback broke"


def test_early_stopping_tests_the_best_validation_weights(tmp_path):
    spec = tiny_spec(steps=200, train={"eval_every": 5, "patience": 2, "lr": 0.0},
                     track={"checkpoint_dir": str(tmp_path)})
    tracker = MemoryTracker()
    result = train(spec, tracker, progress=False)
    assert result.outcome is Outcome.FINISHED
    assert result.steps == 15  # lr 0: no improvement after the first evaluation, patience 2
    assert tracker.tags["early_stopped_at"] == "15"


def test_interrupt_then_resume_reaches_the_same_final_metrics(tmp_path):
    """SIGINT mid-run saves a checkpoint and marks the run KILLED; resuming from that
    checkpoint finishes with exactly the metrics of an uninterrupted run."""
    spec = tiny_spec("lstm", steps=40, track={"checkpoint_dir": str(tmp_path)},
                     model={"dropout": 0.3, "num_layers": 2}, train={"eval_every": 10})
    reference = train(spec, MemoryTracker(), progress=False)

    def interrupt(step, metrics):
        if step == 20:
            signal.raise_signal(signal.SIGINT)

    first = MemoryTracker()
    stopped = train(spec, first, report=interrupt, progress=False)
    assert stopped.outcome is Outcome.KILLED and first.status == "KILLED" and first.tags["outcome"] == "killed"
    assert stopped.steps == 20 and first.tags["stop_reason"] == stopped.reason
    assert stopped.reason == f"SIGINT at step 20; resume with --resume {first.run_id}"  # the stored words
    payload = load(tmp_path / first.run_id / "last.pt")
    assert payload["step"] == 20
    payload["run_id"] = first.run_id
    resumed = MemoryTracker()
    result = train(spec, resumed, resume=payload, progress=False)
    assert result.outcome is Outcome.FINISHED and resumed.run_id == first.run_id
    assert result.metrics == reference.metrics
    # the run's clock went on from the checkpoint: the seconds logged cover both parts, not the last one
    ((_, ran),) = resumed.history("run_seconds")
    assert payload["timing"]["run"] > 0 and ran > payload["timing"]["run"]
    assert ran < payload["timing"]["run"] + result.wall_time_s


def test_an_interrupt_while_the_run_is_recorded_kills_it_after_one_step_never_crashes_it(tmp_path):
    """SIGINT after the run exists but before its first step (here in on_start, where a sweep
    records the trial's run id; a two-worker sweep's Ctrl-C landed there and left its run FAILED):
    the run stops after one step, KILLED with its checkpoint, and nothing is raised."""
    spec = tiny_spec("lstm", steps=40, track={"checkpoint_dir": str(tmp_path)}, train={"eval_every": 10})
    tracker = MemoryTracker()
    try:
        result = train(spec, tracker, progress=False, on_start=lambda run_id: signal.raise_signal(signal.SIGINT))
    except KeyboardInterrupt:
        pytest.fail(f"the interrupt escaped train(); the run ended {tracker.status}")
    assert result.outcome is Outcome.KILLED and tracker.status == "KILLED" and result.steps == 1
    assert result.reason == f"SIGINT at step 1; resume with --resume {tracker.run_id}"
    assert load(tmp_path / tracker.run_id / "last.pt")["step"] == 1


@pytest.mark.parametrize("stop_when_solved", [False, True])
def test_an_interrupt_while_testing_kills_the_run_and_a_resume_only_tests(tmp_path, monkeypatch, stop_when_solved):
    """Before: SIGINT during the final test evaluation (no step checks the flag there) escaped as
    KeyboardInterrupt and ended the run CRASHED. Now it is KILLED at once; its resume trains no
    further (a run stopped when solved would otherwise train on past its stop) and only tests."""
    from harness.training import trainer as train_module

    spec = tiny_spec("gru", task_options={"length": 2}, model={"hidden_size": 16},
                     train={"steps": 300, "eval_every": 10, "lr": 0.02, "batch_size": 32,
                            "stop_when_solved": stop_when_solved},
                     track={"checkpoint_dir": str(tmp_path), "probe": False, "gate_stats": False})
    reference = train(spec, MemoryTracker(), progress=False)
    assert (reference.steps < 300) is stop_when_solved
    real = train_module.evaluate

    def evaluate(model, task, split, *args, **kwargs):
        if split == "test":
            signal.raise_signal(signal.SIGINT)
        return real(model, task, split, *args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", evaluate)
    first = MemoryTracker()
    try:
        stopped = train(spec, first, progress=False)
    except KeyboardInterrupt:
        pytest.fail(f"the interrupt escaped train(); the run ended {first.status}")
    monkeypatch.setattr(train_module, "evaluate", real)
    assert stopped.outcome is Outcome.KILLED and first.status == "KILLED" and stopped.metrics == {}
    assert stopped.reason == f"SIGINT while testing at step {reference.steps}; resume with --resume {first.run_id}"
    assert first.tags["stop_reason"] == stopped.reason and "test_accuracy" not in dict(
        (k, v) for k, v, _ in first.metrics)
    payload = load(tmp_path / first.run_id / "last.pt")
    payload["run_id"] = first.run_id
    resumed = MemoryTracker()
    result = train(spec, resumed, resume=payload, progress=False)
    assert result.outcome is Outcome.FINISHED and result.steps == reference.steps
    assert result.metrics == reference.metrics
    assert not resumed.history("train_loss"), "the resume trained no step"


def test_a_signal_while_the_results_are_logged_leaves_the_run_finished_and_reaches_the_caller(tmp_path, monkeypatch):
    """Outside the test set and the context ablation a signal only sets the flag: a run whose
    results were computed ends FINISHED with them all, and the signal is delivered again once
    the run has ended, to the caller's own handler (here Python's: KeyboardInterrupt)."""
    from harness.training import artifacts

    real = artifacts.log_end

    def log_end(*args):
        # raise_signal: to this thread, so its handler has run when the call returns
        signal.raise_signal(signal.SIGINT)
        real(*args)

    monkeypatch.setattr(artifacts, "log_end", log_end)
    tracker = MemoryTracker()
    # the caller's handler, set here: a process started in the background by a shell without job
    # control (CI under nohup ... &) inherits SIGINT ignored, and Python then keeps it ignored
    caller = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(tiny_spec("lstm", steps=10, track={"checkpoint_dir": str(tmp_path)}), tracker, progress=False)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the caller's handler is given back"
    finally:
        signal.signal(signal.SIGINT, caller)
    assert tracker.status == "FINISHED" and "stop_reason" not in tracker.tags
    assert "config.toml" in tracker.artifacts and tracker.history("test_accuracy")


def test_a_task_that_states_no_baseline_still_finishes(tmp_path, monkeypatch):
    """A plug-in task may leave out baseline() (NotImplementedError): its run logs no baseline_*."""
    def no_baseline(self):
        raise NotImplementedError

    monkeypatch.setattr(tasks.get("recall"), "baseline", no_baseline)
    result = train(tiny_spec("gru", steps=10, track={"checkpoint_dir": str(tmp_path)}), MemoryTracker(),
                   progress=False)
    assert result.outcome is Outcome.FINISHED and "test_accuracy" in result.metrics
    assert not [k for k in result.metrics if k.startswith("baseline_")]


@pytest.mark.parametrize("keep, left", [("resumable", False), ("always", True), ("never", False)])
def test_a_finished_run_keeps_its_checkpoint_only_when_asked(tmp_path, keep, left):
    spec = tiny_spec("lstm", steps=12, track={"checkpoint_dir": str(tmp_path), "keep_checkpoint": keep})
    result = train(spec, MemoryTracker(), progress=False)
    assert result.outcome is Outcome.FINISHED
    assert (tmp_path / result.run_id / "last.pt").exists() is left
    assert left or not (tmp_path / result.run_id).exists()  # no empty folder per run either


@pytest.mark.parametrize("keep, left", [("resumable", True), ("never", False)])
def test_a_killed_run_keeps_its_checkpoint_unless_never(tmp_path, keep, left):
    spec = tiny_spec("lstm", steps=40, track={"checkpoint_dir": str(tmp_path), "keep_checkpoint": keep},
                     train={"eval_every": 10})

    def interrupt(step, metrics):
        if step == 20:
            signal.raise_signal(signal.SIGINT)

    stopped = train(spec, MemoryTracker(), report=interrupt, progress=False)
    assert stopped.outcome is Outcome.KILLED and (tmp_path / stopped.run_id / "last.pt").exists() is left
    assert ("resume with --resume" in stopped.reason) is left, "no advice to resume what has no checkpoint"


def test_threads_explicit_or_automatic_and_recorded(tmp_path, monkeypatch):
    from harness.training import threads

    before = torch.get_num_threads()
    try:
        tracker = MemoryTracker()
        result = train(tiny_spec(steps=2, train={"threads": 1}, track={"checkpoint_dir": str(tmp_path)}), tracker,
                       progress=False)
        assert result.threads == 1 == torch.get_num_threads()
        assert tracker.tags["threads"] == "1" and tracker.params["train.threads"] == 1
        monkeypatch.setattr(threads, "usable_cores", lambda: 8)
        torch.set_num_threads(8)
        assert threads.automatic() == 4  # half the cores: the rest for whatever else runs
        torch.set_num_threads(2)
        assert threads.automatic() == 2  # never more than a caller (a sweep worker) already set
        monkeypatch.setattr(threads, "usable_cores", lambda: 1)
        assert threads.automatic() == 1
    finally:
        torch.set_num_threads(before)


class LinearCell(Cell):
    """h_t = U h_{t-1} + x_t: gradients are powers of U^T, computable by hand."""

    name = "linear_test"

    def __init__(self, input_size, hidden_size, options=None):
        super().__init__(input_size, hidden_size, options)
        self.U = nn.Parameter(torch.zeros(hidden_size, hidden_size))

    def project(self, x):
        return x

    def step(self, xp, state, t):
        return (xp + state[0] @ self.U.t(),), {}


def test_gradient_probe_matches_the_hand_computed_linear_case():
    torch.manual_seed(0)
    H, T, B = 4, 12, 3
    rnn = Recurrent(LinearCell, H, H)
    U = torch.randn(H, H) * 0.5
    with torch.no_grad():
        rnn.cells[0].U.copy_(U)
    v = torch.randn(H)
    x = torch.randn(B, T, H)
    out, _, traces = rnn.trace(x, retain_grad=True)
    (out[:, -1] @ v).sum().backward()  # L = Σ_b v·h_T
    measured = probes.top_layer_gradients(traces, 1)  # (T,), index t
    for t in range(T):
        expected = torch.linalg.matrix_power(U.t(), T - 1 - t) @ v  # ∂L/∂h_t, same for every b
        assert measured[t] == pytest.approx(expected.norm().item(), rel=1e-5)


def test_gradient_horizon_and_decay_on_a_geometric_profile():
    k = np.arange(50)
    profile = probes.GradientProfile(grad_h=0.8 ** k, grad_x=0.8 ** k)
    horizon, censored = profile.horizon(1e-3)
    assert horizon == math.floor(math.log(1e-3) / math.log(0.8)) and not censored
    assert profile.decay_per_step() == pytest.approx(0.8)
    flat = probes.GradientProfile(grad_h=np.ones(20), grad_x=np.ones(20))
    assert flat.horizon(1e-3) == (19, True)


def test_gate_statistics_cover_each_cells_gates():
    torch.manual_seed(0)
    for name, keys in [("lstm", {"gate_forget_mean", "gate_forget_saturated", "gate_input_mean"}),
                       ("gru", {"gate_update_mean", "gate_reset_saturated"}),
                       ("phased_lstm", {"openness_mean", "gate_output_mean"}),
                       ("skip_lstm", {"update_mean", "gate_forget_mean"})]:
        _, _, traces = variants.create(name, 3, 4, bidirectional=True).trace(torch.randn(2, 7, 3))
        stats = probes.gate_statistics(traces)
        assert keys <= set(stats), name
        assert all(0.0 <= v <= 1.0 for k, v in stats.items() if k.startswith("gate_")), name


def test_run_logs_instrumentation_for_special_cells(tmp_path):
    tracker = MemoryTracker()
    spec = tiny_spec("skip_gru", steps=6, cell={"budget_weight": 1e-3}, track={"checkpoint_dir": str(tmp_path)})
    train(spec, tracker, progress=False)
    keys = {k for k, _, _ in tracker.metrics}
    assert {"update_mean", "regularizer", "gate_update_saturated", "gradient_horizon", "lr",
            "steps_per_second", "val_accuracy", "test_accuracy"} <= keys


def test_chrono_horizon_comes_from_the_task():
    spec = tiny_spec("lstm", "copy", task_options={"length": 30}, cell={"forget_init": "chrono"})
    from harness.training.trainer import Trainer

    trainer = Trainer(spec, MemoryTracker(), progress=False)
    assert trainer.spec.cell.chrono_max == 50  # T + 20 steps of the copy task
    assert dataclasses.asdict(trainer.spec.cell)["forget_init"] == "chrono"


def test_keras_recipe_layers_and_optimizer_follow_keras_defaults():
    """The IMDB recipe's embedding, dense head and RMSprop use Keras' defaults, not torch's."""
    from harness.claims.imdb import RECIPE
    from harness.training.model import SequenceModel
    from harness.training.spec import build_spec
    from harness.training.optim import make_optimizer

    values: dict = {}
    for key, value in RECIPE.items():
        section, name = key.split(".")
        values.setdefault(section, {})[name] = value
    spec = build_spec({**values, "model": {**values["model"], "variant": "simple_rnn"}})
    torch.manual_seed(0)
    model = SequenceModel(spec.model, spec.cell, spec.build_task())
    emb = model.embedding.weight
    assert emb.abs().max() <= 0.05 and emb.std() > 0.02  # U(-0.05, 0.05), not N(0, 1)
    bound = math.sqrt(6 / (model.head.in_features + model.head.out_features))
    assert model.head.weight.abs().max() <= bound and not model.head.bias.any()
    group = make_optimizer(spec.train, model.parameters()).param_groups[0]
    assert (group["alpha"], group["eps"], group["lr"]) == (0.9, 1e-7, 1e-3)
    default = make_optimizer(build_spec({"train": {"optimizer": "rmsprop"}}).train, model.parameters())
    assert (default.param_groups[0]["alpha"], default.param_groups[0]["eps"]) == (0.99, 1e-8)


def test_train_until_solved_stops_at_the_first_evaluation_that_meets_the_criterion(tmp_path):
    """A run stops at the first evaluation whose validation accuracy reaches recall's 99%, not
    before (every earlier evaluation is below it) and not after; without the option the same
    run goes on to its budget and records the same steps_to_solve."""
    base = dict(task_options={"length": 2}, model={"hidden_size": 16},
                train={"steps": 600, "eval_every": 10, "lr": 0.02, "batch_size": 32},
                track={"checkpoint_dir": str(tmp_path), "probe": False, "gate_stats": False})
    tracker = MemoryTracker()
    stopped = train(tiny_spec("gru", **{**base, "train": {**base["train"], "stop_when_solved": True}}), tracker,
                    progress=False)
    history = tracker.history("val_accuracy")
    first = next(step for step, value in history if value >= 0.99)
    assert stopped.steps == first < 600 and history[-1][0] == first
    assert all(value < 0.99 for step, value in history if step < first)
    assert stopped.metrics["solved"] == 1.0 and stopped.metrics["steps_to_solve"] == first
    assert stopped.metrics["sequences_to_solve"] == first * 32 and stopped.metrics["solve_cost"] == first
    assert tracker.tags["stopped_when_solved_at"] == str(first)
    full = train(tiny_spec("gru", **base), MemoryTracker(), progress=False)
    assert full.steps == 600 and full.metrics["steps_to_solve"] == first


def test_an_unsolved_run_costs_more_than_any_solved_one(tmp_path):
    spec = tiny_spec("gru", task_options={"length": 2}, train={"steps": 40, "eval_every": 10, "lr": 0.0,
                                                               "stop_when_solved": True},
                     track={"checkpoint_dir": str(tmp_path), "probe": False, "gate_stats": False})
    result = train(spec, MemoryTracker(), progress=False)
    assert result.steps == 40 and result.metrics["solved"] == 0.0 and "steps_to_solve" not in result.metrics
    assert 40 < result.metrics["solve_cost"] <= 80  # (2 - progress) x budget, progress in [0, 1]


def test_the_gradient_flow_figure_has_a_line_per_probe_in_each_panel(tmp_path):
    tracker = MemoryTracker()
    train(tiny_spec("lstm", steps=9, track={"checkpoint_dir": str(tmp_path), "probe_points": 3}), tracker,
          progress=False)
    figure = tracker.artifacts["gradient_flow.png"]  # a matplotlib Figure, logged with log_figure
    h_panel, x_panel = figure.axes
    assert [line.get_label() for line in x_panel.get_lines()] == ["step 0", "step 4", "step 8"]
    assert all(len(line.get_xdata()) == 22 for line in x_panel.get_lines())  # recall lag 20: 22 steps
    assert h_panel.get_yscale() == "log" and any("× norm at the loss step" in line.get_label()
                                                 for line in h_panel.get_lines())
