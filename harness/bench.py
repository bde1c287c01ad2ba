"""Speed of every variant and computation path, as ratios to torch.nn.LSTM in the same run.

One process, one run: every row (torch.nn references, each variant's paths, the Skip RNN
at a fixed update fraction) is warmed up, then all rows are timed round-robin, `repeats`
times, so that drift of a shared machine hits every row alike. Times are per sequence step
(the call's time / T), median and interquartile range over the repeats.

  forward   the layer's forward under torch.no_grad (inference / evaluation)
  train     forward + backward of sum(outputs) with gradients for inputs and weights
  peak MB   CUDA: torch.cuda.max_memory_allocated during one train call, above what was
            allocated before. CPU: the high-water mark of bytes held by PyTorch's CPU
            allocator during one train call (torch.profiler memory events at op granularity)
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import tempfile
import time
from typing import Callable

import torch
from torch import nn

import variants

STANDARD = {"cpu": [{"batch": 64, "hidden": 64, "length": 200}],
            "cuda": [{"batch": 128, "hidden": 256, "length": 512}, {"batch": 128, "hidden": 256, "length": 2048}]}
QUICK = {"batch": 8, "hidden": 16, "length": 24}
REFERENCES = {"torch.nn.LSTM": nn.LSTM, "torch.nn.GRU": nn.GRU, "torch.nn.RNN": nn.RNN}
SKIP_TARGET = 0.4  # Δũ = 0.4 with W_p = 0: the update pattern 1, 0, 1, 0, ... (exactly 50%)


@dataclasses.dataclass
class Row:
    name: str
    kind: str  # reference, variant or skip
    variant: str
    path: str
    module: nn.Module
    batch: int
    hidden: int
    length: int
    note: str = ""
    update_fraction: float | None = None
    forward_s: list[float] = dataclasses.field(default_factory=list)
    train_s: list[float] = dataclasses.field(default_factory=list)
    peak_mb: float = float("nan")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_rows(names: list[str], sizes: dict, input_size: int | None, device, dtype) -> list[Row]:
    """Reference rows, then every path of every variant, then Skip RNN rows at ~50% updates."""
    B, H, T = sizes["batch"], sizes["hidden"], sizes["length"]
    X = input_size or H
    rows = []
    for label, cls in REFERENCES.items():
        torch.manual_seed(0)
        rows.append(Row(label, "reference", label, "cudnn" if device.type == "cuda" else "native",
                        cls(X, H).to(device, dtype), B, H, T))
    for name in names:
        cls = variants.get(name)
        for path in cls.paths:
            torch.manual_seed(0)
            rows.append(Row(f"{name}/{path}", "variant", name, path,
                            variants.create(name, X, H).to(device, dtype), B, H, T))
    for name in names:
        cls = variants.get(name)
        if not hasattr(cls, "updates"):
            continue
        for gate, note in (("fixed", "W_p = 0, Δũ = 0.4: updates every other step"),
                           ("learned", "random W_p: Δũ varies by row and step")):
            for path in cls.paths:
                torch.manual_seed(0)
                module = skip_at_half(variants.create(name, X, H), gate).to(device, dtype)
                rows.append(Row(f"{name}/{path} @{gate}", "skip", name, path, module, B, H, T, note))
    return rows


@torch.no_grad()
def skip_at_half(layer: nn.Module, gate: str) -> nn.Module:
    """Set a Skip RNN layer's update gate so about half of the steps update."""
    for cell in layer.cells:
        if gate == "fixed":
            cell.update_weight.zero_()
            cell.update_bias.fill_(math.log(SKIP_TARGET / (1 - SKIP_TARGET)))
        else:
            cell.update_weight.normal_(0.0, 4.0 / math.sqrt(cell.hidden_size))
            cell.update_bias.fill_(-0.5)
    return layer


def inputs(row: Row, device, dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(row.batch, row.length, row.module.input_size, generator=g)
    return x.to(device, dtype)


def calls(row: Row, x: torch.Tensor) -> tuple[Callable[[], None], Callable[[], None]]:
    """(forward, train) closures for one row."""
    module = row.module
    if row.kind == "reference":
        run = lambda inp: module(inp.transpose(0, 1))[0]  # noqa: E731 (time-major, as torch.nn)
    else:
        run = lambda inp: module(inp, path=row.path)[0]  # noqa: E731

    def forward():
        with torch.no_grad():
            run(x)

    def train():
        inp = x.detach().requires_grad_()
        module.zero_grad(set_to_none=True)
        run(inp).float().sum().backward()

    return forward, train


def peak_memory_mb(fn: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2 ** 20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2 ** 20


def measure(rows: list[Row], device: torch.device, dtype, repeats: int, warmup: int,
            progress: Callable[[str], None] = lambda s: None) -> None:
    """Warm every row up, then time all rows round-robin `repeats` times."""
    closures = []
    for row in rows:
        x = inputs(row, device, dtype)
        forward, train = calls(row, x)
        for _ in range(warmup):
            forward()
            train()
        if hasattr(getattr(row.module, "cells", [None])[0], "updates"):  # a Skip RNN
            with torch.no_grad():
                _, state = row.module(x, path=row.path)
            row.update_fraction = float(state[-1].float().mean()) / row.length
        row.peak_mb = peak_memory_mb(train, device)
        closures.append((forward, train))
        progress(f"warmed up {row.name}")
    for r in range(repeats):
        for row, (forward, train) in zip(rows, closures):
            for fn, times in ((forward, row.forward_s), (train, row.train_s)):
                sync(device)
                start = time.perf_counter()
                fn()
                sync(device)
                times.append(time.perf_counter() - start)
        progress(f"repeat {r + 1}/{repeats}")


def summary(values: list[float], steps: int) -> tuple[float, float]:
    """(median, interquartile range) of per-step times in milliseconds."""
    ms = sorted(v * 1e3 / steps for v in values)
    if len(ms) < 2:
        return ms[0], 0.0
    q = statistics.quantiles(ms, n=4, method="inclusive")
    return statistics.median(ms), q[2] - q[0]


def table(rows: list[Row]) -> list[dict]:
    """One dict per row. Ratios to torch.nn.LSTM of the same size are paired: the median over
    repeats of (this row's time / torch.nn.LSTM's time in the same round), which cancels the
    slow drifts of a shared machine better than a ratio of two medians."""
    base = {row.length: row for row in rows if row.name == "torch.nn.LSTM"}
    out = []
    for row in rows:
        fwd, fwd_iqr = summary(row.forward_s, row.length)
        train, train_iqr = summary(row.train_s, row.length)
        ref = base[row.length]
        out.append({
            "row": row.name, "kind": row.kind, "variant": row.variant, "path": row.path,
            "batch": row.batch, "hidden": row.hidden, "length": row.length,
            "update_fraction": None if row.update_fraction is None else round(row.update_fraction, 3),
            "forward_ms_per_step": round(fwd, 4), "forward_iqr": round(fwd_iqr, 4),
            "train_ms_per_step": round(train, 4), "train_iqr": round(train_iqr, 4),
            "forward_seq_per_s": round(row.batch / (fwd * row.length / 1e3), 1),
            "train_seq_per_s": round(row.batch / (train * row.length / 1e3), 1),
            "peak_mb": round(row.peak_mb, 2),
            "forward_ratio": paired_ratio(row.forward_s, ref.forward_s),
            "train_ratio": paired_ratio(row.train_s, ref.train_s),
            "note": row.note})
    return out


def paired_ratio(times: list[float], reference: list[float]) -> float:
    return round(statistics.median(a / b for a, b in zip(times, reference)), 3)


def skip_speedups(records: list[dict]) -> list[dict]:
    """fast vs explicit (the masked reference, computing every step) at the same gate."""
    by = {(r["variant"], r["path"], r["row"].partition(" @")[2], r["length"]): r
          for r in records if r["kind"] == "skip"}
    out = []
    for (variant, path, gate, length), r in by.items():
        ref = by.get((variant, "explicit", gate, length))
        if path == "explicit" or ref is None:
            continue
        dense = next((d for d in records if d["row"] == f"{variant}/{path}" and d["length"] == length), None)
        out.append({"variant": variant, "gate": gate, "length": length, "update_fraction": r["update_fraction"],
                    "train_speedup_vs_masked": round(ref["train_ms_per_step"] / r["train_ms_per_step"], 3),
                    "forward_speedup_vs_masked": round(ref["forward_ms_per_step"] / r["forward_ms_per_step"], 3),
                    "train_speedup_vs_all_updates": None if dense is None else
                    round(dense["train_ms_per_step"] / r["train_ms_per_step"], 3),
                    "all_updates_fraction": None if dense is None else dense["update_fraction"]})
    return out


def harness_overhead(steps: int, pairs: int, device: str, quick: bool) -> dict:
    """Wall time of the default training run with tracking (MLflow on a temporary SQLite
    store, gradient probes, gate statistics) over the same run with tracking off."""
    from harness.spec import build_spec
    from harness.tracking import make_tracker
    from harness.train import train

    with tempfile.TemporaryDirectory() as tmp:
        base = {"model": {"variant": "lstm"}, "train": {"steps": steps, "device": device}}
        if quick:
            base["task"] = {"val_size": 128, "test_size": 128}
        on = build_spec({**base, "track": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db",
                                           "checkpoint_dir": f"{tmp}/on", "experiment": "bench-overhead"}})
        off = build_spec({**base, "track": {"enabled": False, "probe": False, "gate_stats": False,
                                            "checkpoint_dir": f"{tmp}/off"}})

        def run(spec) -> float:
            tracker = make_tracker(spec.track, spec.experiment)
            start = time.perf_counter()
            train(spec, tracker, progress=False)
            return time.perf_counter() - start

        run(off), run(on)  # warm-up: imports, the MLflow schema, caches
        pairs_s = []  # (tracked, untracked), alternating which goes first
        for i in range(pairs):
            first, second = (on, off) if i % 2 else (off, on)
            a, b = run(first), run(second)
            pairs_s.append((a, b) if first is on else (b, a))
    ratios = sorted(t / u for t, u in pairs_s)
    t_on, t_off = statistics.median(p[0] for p in pairs_s), statistics.median(p[1] for p in pairs_s)
    return {"steps": steps, "pairs": pairs, "tracked_s": round(t_on, 3), "untracked_s": round(t_off, 3),
            "ratio": round(statistics.median(ratios), 4), "ratio_min": round(ratios[0], 4),
            "ratio_max": round(ratios[-1], 4), "overhead_s": round(t_on - t_off, 3)}
