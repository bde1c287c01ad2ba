"""train.precision and train.deterministic: every cell trains under bf16 autocast to within a
stated tolerance of float32, both settings are recorded, and deterministic mode is switched per
run (a sweep worker's next trial does not inherit it)."""
from __future__ import annotations

import pytest
import torch
from helpers import run_cli, tiny_spec

import variants
from harness.tracking import MemoryTracker
from harness.training.train import train

# Adding task, 40 steps, on the path a run takes (auto) and on the explicit loop (every op under
# autocast): after the same updates the bf16 run's training loss is within 10% of float32's and
# its validation MSE within 0.02 (measured: within 0.2% and 0.001 for every cell)
LOSS_RTOL, VAL_ATOL = 0.10, 0.02


def _train(name: str, precision: str, path: str = "auto") -> MemoryTracker:
    tracker = MemoryTracker()
    spec = tiny_spec(name, "adding", steps=40, task_options={"length": 20}, model={"path": path},
                     train={"precision": precision, "log_every": 40, "eval_every": 40}, track={"probe": False})
    result = train(spec, tracker, progress=False)
    assert result.outcome.is_result, result.reason
    return tracker


@pytest.mark.parametrize("path", ["auto", "explicit"])
@pytest.mark.parametrize("name", variants.available())
def test_bf16_training_stays_within_the_stated_tolerance_of_fp32(name, path):
    fp32, bf16 = _train(name, "fp32", path), _train(name, "bf16", path)
    (_, loss32), = fp32.history("train_loss")
    (_, loss16), = bf16.history("train_loss")
    assert abs(loss16 - loss32) <= LOSS_RTOL * loss32, (loss16, loss32)
    val32, val16 = fp32.history("val_mse")[-1][1], bf16.history("val_mse")[-1][1]
    assert abs(val16 - val32) <= VAL_ATOL, (val16, val32)
    assert bf16.params["train.precision"] == "bf16" and fp32.params["train.precision"] == "fp32"


def test_deterministic_mode_is_recorded_and_set_per_run(tmp_path):
    tracker = MemoryTracker()
    train(tiny_spec("lstm", train={"deterministic": True}, track={"probe": False}), tracker, progress=False)
    assert tracker.params["train.deterministic"] in (True, "True") and torch.are_deterministic_algorithms_enabled()
    train(tiny_spec("lstm", track={"probe": False}), MemoryTracker(), progress=False)
    assert not torch.are_deterministic_algorithms_enabled()


def test_an_unknown_precision_is_one_line(tmp_path):
    done = run_cli("run", "--set", "train.precision=fp16", cwd=tmp_path)
    assert done.returncode == 2 and "fp32" in done.stderr and len(done.stderr.strip().splitlines()) == 1
