"""`python -m harness bench`: the quick run end to end, its files, its numbers' structure,
its quiet output, where it writes, and its errors. Nothing here depends on how fast the
machine is or how loaded: the checks are on structure (counts, identities, invariants that
hold by construction), never on a measured time."""
from __future__ import annotations

import csv
import io
import json
import math
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import torch
from helpers import run_cli

import variants
from harness.bench import speed as bench
from harness.training import threads
from harness.cli import main

FIELDS = ("forward_ms_per_step", "train_ms_per_step", "train_seq_per_s", "forward_ratio", "train_ratio")


def run_json(*argv) -> dict:
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = main(["bench", *argv, "--json"])
    assert code == 0
    return json.loads(buffer.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    threads_before = torch.get_num_threads()
    result = run_json("--quick", "--device", "cpu", "--out", str(out))
    assert torch.get_num_threads() == threads_before, "bench restores the caller's thread count"
    return out, result


def test_quick_bench_has_every_variant_path_and_reference(quick):
    out, result = quick
    names = {r["row"] for r in result["rows"]}
    assert {"torch.nn.LSTM", "torch.nn.GRU", "torch.nn.RNN"} <= names
    for name in variants.available():
        for path in variants.get(name).paths:
            assert f"{name}/{path}" in names
    for row in result["rows"]:
        for field in FIELDS:
            assert math.isfinite(row[field]) and row[field] > 0, (row["row"], field, row[field])
        assert row["peak_mb"] >= 0
    lstm = next(r for r in result["rows"] if r["row"] == "torch.nn.LSTM")
    assert lstm["train_ratio"] == 1.0 and lstm["forward_ratio"] == 1.0


def test_quick_bench_times_every_row_long_enough(quick):
    """The stopping rule holds by construction: every row has at least `repeats` samples and
    `min_time` seconds of timed calls per kind, however slow or loaded the machine."""
    _, result = quick
    for row in result["rows"]:
        assert row["samples"] >= bench.QUICK_TIMING.repeats, row["row"]
        assert row["forward_calls"] >= 1 and row["train_calls"] >= 1
        assert row["forward_timed_s"] >= bench.QUICK_TIMING.min_time, row["row"]
        assert row["train_timed_s"] >= bench.QUICK_TIMING.min_time, row["row"]


def test_quick_bench_uses_the_thread_count_of_a_run(quick):
    """More threads than free cores made torch.nn.LSTM (oneDNN) wait at every step: the bench
    times with what a run uses, and says so."""
    out, result = quick
    assert result["machine"]["torch_threads"] == threads.automatic()
    assert f"torch threads {result['machine']['torch_threads']})" in (out / "bench-cpu-quick.md").read_text()


def test_quick_bench_writes_csv_and_markdown(quick):
    out, result = quick
    assert result["files"] == [str(out / "bench-cpu-quick.csv"), str(out / "bench-cpu-quick.md")]
    with open(out / "bench-cpu-quick.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["row"] for r in rows] == [r["row"] for r in result["rows"]]
    assert [float(r["train_ratio"]) for r in rows] == [r["train_ratio"] for r in result["rows"]]
    text = (out / "bench-cpu-quick.md").read_text()
    assert "| torch.nn.LSTM |" in text and "skip_lstm/fast @fixed" in text
    assert "machine:" in text and "command: `python -m harness bench" in text and "--quick" in text
    assert "Harness overhead" in text and "fixed cost per tracked run" in text


def test_quick_bench_reports_the_skip_speedup_and_overhead(quick):
    _, result = quick
    fixed = [s for s in result["skip"] if s["gate"] == "fixed"]
    assert {s["variant"] for s in fixed} == {"skip_lstm", "skip_gru"}
    for s in fixed:
        assert s["update_fraction"] == 0.5  # Δũ = 0.4: every other step
        assert s["train_speedup_vs_masked"] > 0
    overhead = result["overhead"]
    assert overhead["steps"] == 8 and overhead["pairs"] == 1 and overhead["ratio"] > 0
    # one pair: the fixed cost is that pair's difference, and the range is that one value
    assert overhead["fixed_min_s"] == overhead["fixed_s"] == overhead["fixed_max_s"]
    assert overhead["fixed_s"] == pytest.approx(overhead["tracked_s"] - overhead["untracked_s"], abs=2e-3)


def _row(name, times, length=10):
    return bench.Row(name, "reference" if name == "torch.nn.LSTM" else "variant", name, "p", None, 1, 1, length,
                     forward_s=list(times), train_s=list(times), calls={"forward": 1, "train": 1})


def test_ratios_are_paired_by_round_and_never_rounded_to_zero():
    rows = [_row("torch.nn.LSTM", [1e-3, 1e-3, 1e-2]), _row("tiny", [1e-7, 1e-7, 1e-6]),
            _row("drifting", [1e-3, 1e-2, 2e-2])]
    table = {r["row"]: r for r in bench.table(rows)}
    assert table["torch.nn.LSTM"]["forward_ratio"] == 1.0
    assert table["tiny"]["forward_ratio"] == 1e-4  # 3-decimal rounding made this 0.0
    assert table["tiny"]["forward_ms_per_step"] == 1e-5
    # per round 1, 10, 2 -> median 2; a ratio of the medians (1e-2 / 1e-3) would say 10
    assert table["drifting"]["train_ratio"] == 2.0
    assert bench.significant(0.000123456) == 0.0001235 and bench.significant(123456.0) == 123500.0


def test_quick_bench_output_is_quiet_and_stays_out_of_the_working_directory(tmp_path):
    """No profiler or allocator chatter, and without --out a quick bench writes into a new
    temporary folder: the working directory (here, a checkout's results/) is left alone."""
    result = run_cli("bench", "--quick", "--device", "cpu", "--variants", "simple_rnn", "--overhead-steps", "0",
                     "--min-time", "0.02", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith(("[T=24] ", "wrote ")) for line in lines), result.stderr
    assert list(tmp_path.iterdir()) == []
    written = [Path(p.strip()) for p in lines[-1].removeprefix("wrote ").split(",")]
    try:
        assert [p.name for p in written] == ["bench-cpu-quick.csv", "bench-cpu-quick.md"]
        assert all(p.exists() and tmp_path not in p.parents for p in written)
    finally:
        shutil.rmtree(written[0].parent, ignore_errors=True)


def test_overhead_only_reports_the_fixed_cost_in_seconds_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_json("--overhead-only", "--device", "cpu", "--overhead-steps", "2", "--overhead-pairs", "2")
    assert result["rows"] == [] and result["files"] == []
    overhead = result["overhead"]
    assert overhead["steps"] == 2 and overhead["pairs"] == 2
    assert overhead["fixed_min_s"] <= overhead["fixed_s"] <= overhead["fixed_max_s"]
    assert overhead["tracked_s"] > 0 and overhead["untracked_s"] > 0
    assert list(tmp_path.iterdir()) == [], "the temporary MLflow store is removed"


def test_the_recorded_command_keeps_zero_values():
    from harness.cli import build_parser
    from harness.commands.bench import command_line

    args = build_parser("bench").parse_args(["bench", "--overhead-steps", "0", "--quick", "--length", "5"])
    assert command_line(args) == "python -m harness bench --length 5 --overhead-steps 0 --quick"


@pytest.mark.parametrize("args,message", [
    (["--variants", "lsmt"], "unknown variant 'lsmt'"),
    (["--length", "0"], "--length must be >= 1"),
    (["--min-time", "0"], "--min-time must be > 0"),
    (["--repeats", "0"], "--repeats must be > 0"),
    (["--threads", "0"], "--threads must be >= 1"),
])
def test_bad_bench_arguments_are_one_line_errors(tmp_path, capsys, args, message):
    assert main(["bench", "--quick", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_bench_on_cuda_without_cuda_is_a_clear_error(tmp_path, capsys):
    assert main(["bench", "--quick", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
