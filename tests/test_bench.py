"""`python -m harness bench`: the quick run end to end, its files, and its errors."""
from __future__ import annotations

import csv
import json
import math

import pytest

import variants
from harness.cli import main

FIELDS = ("forward_ms_per_step", "train_ms_per_step", "train_seq_per_s", "forward_ratio", "train_ratio")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = main(["bench", "--quick", "--device", "cpu", "--out", str(out), "--json"])
    assert code == 0
    return out, json.loads(buffer.getvalue().strip().splitlines()[-1])


def test_quick_bench_has_every_variant_path_and_reference(quick):
    out, result = quick
    names = {r["row"] for r in result["rows"]}
    assert {"torch.nn.LSTM", "torch.nn.GRU", "torch.nn.RNN"} <= names
    for name in variants.available():
        for path in variants.get(name).paths:
            assert f"{name}/{path}" in names
    for row in result["rows"]:
        for field in FIELDS:
            assert math.isfinite(row[field]) and row[field] > 0, (row["row"], field)
        assert row["peak_mb"] >= 0
    lstm = next(r for r in result["rows"] if r["row"] == "torch.nn.LSTM")
    assert lstm["train_ratio"] == 1.0 and lstm["forward_ratio"] == 1.0


def test_quick_bench_writes_csv_and_markdown(quick):
    out, result = quick
    with open(out / "bench-cpu-quick.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["row"] for r in rows] == [r["row"] for r in result["rows"]]
    text = (out / "bench-cpu-quick.md").read_text()
    assert "| torch.nn.LSTM |" in text and "skip_lstm/fast @fixed" in text
    assert "machine:" in text and "command: `python -m harness bench" in text and "--quick" in text
    assert "Harness overhead" in text


def test_quick_bench_reports_the_skip_speedup_and_overhead(quick):
    _, result = quick
    fixed = [s for s in result["skip"] if s["gate"] == "fixed"]
    assert {s["variant"] for s in fixed} == {"skip_lstm", "skip_gru"}
    for s in fixed:
        assert s["update_fraction"] == 0.5  # Δũ = 0.4: every other step
        assert s["train_speedup_vs_masked"] > 0
    assert result["overhead"]["ratio"] > 0 and result["overhead"]["steps"] == 8


@pytest.mark.parametrize("args,message", [
    (["--variants", "lsmt"], "unknown variant 'lsmt'"),
    (["--length", "0"], "--length must be >= 1"),
])
def test_bad_bench_arguments_are_one_line_errors(tmp_path, capsys, args, message):
    assert main(["bench", "--quick", "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_bench_on_cuda_without_cuda_is_a_clear_error(tmp_path, capsys):
    assert main(["bench", "--quick", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
