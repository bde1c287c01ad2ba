"""Speed of every variant and computation path, as ratios to torch.nn.LSTM in the same run.

One process, one run: every row (torch.nn references, each variant's paths, the Skip RNN
at a fixed update fraction) is warmed up until its call time is stable, then all rows are
timed round-robin, so that drift of a shared machine hits every row alike. A sample is the
mean of a calibrated batch of calls lasting about min_time / repeats; rounds go on until
every row has `repeats` samples and `min_time` seconds of timed calls (time-based: a fast
row gets many calls, a slow one few). Times are per sequence step (the call's time / T).

  forward   the layer's forward under torch.no_grad (inference / evaluation)
  train     forward + backward of sum(outputs) with gradients for inputs and weights
  ratio     median over rounds of (row sample / torch.nn.LSTM sample of the same round),
            kept to 4 significant digits (never rounded to 0)
  peak MB   CUDA: torch.cuda.max_memory_allocated during one train call, above what was
            allocated before. CPU: the high-water mark of bytes held by PyTorch's CPU
            allocator during one train call (torch.profiler memory events at op granularity)

Threads: a bench on a CPU uses the thread count of a run (harness.training.threads.automatic) unless
told otherwise. This matters beyond speed: torch.nn.LSTM on a CPU runs oneDNN, which enters
an OpenMP parallel region at every call even at B=8, H=16, while the GRU/RNN kernels at such
sizes stay on one thread. With more threads than free cores (2 threads on a 2-core machine
shared with other work) each region waits for a descheduled sibling thread: torch.nn.LSTM
measured 16 ms per step instead of 0.01 ms, and every ratio to it was ~50x off.
"""
from __future__ import annotations

import dataclasses
import gc
import math
import os
import statistics
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


@dataclasses.dataclass(frozen=True)
class Timing:
    """How long to time: `min_time` seconds of timed calls and `repeats` samples per row and
    kind at least; warm-up of `warmup` calls at least, then until stable or `warmup_s` seconds."""

    min_time: float = 1.0
    repeats: int = 10
    warmup: int = 2
    warmup_s: float = 2.0
    max_rounds: int = 200  # a bound on the run time when samples come out shorter than planned

    @property
    def sample_s(self) -> float:
        return self.min_time / self.repeats


STANDARD_TIMING = Timing()
QUICK_TIMING = Timing(min_time=0.1, repeats=5, warmup=1, warmup_s=0.5)


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
    forward_s: list[float] = dataclasses.field(default_factory=list)  # per-call seconds, one per round
    train_s: list[float] = dataclasses.field(default_factory=list)
    calls: dict[str, int] = dataclasses.field(default_factory=dict)  # calls per sample, by kind
    timed_s: dict[str, float] = dataclasses.field(default_factory=lambda: {"forward": 0.0, "train": 0.0})
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
        for path in variants.get(name).paths:
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

    # Kineto prints two lines per profiler start/stop at its default level; its levels run
    # VERBOSE 0 ... ERROR 4, USDT 5, so only 6 (past the last) silences them. Read once, when
    # the profiler first starts in this process; a user's own setting wins.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2 ** 20


def timed(fn: Callable[[], None], device: torch.device, number: int = 1) -> float:
    """Seconds for `number` consecutive calls of fn (device work included)."""
    sync(device)
    start = time.perf_counter()
    for _ in range(number):
        fn()
    sync(device)
    return time.perf_counter() - start


def warm_up(fn: Callable[[], None], device: torch.device, timing: Timing) -> float:
    """Call fn until two successive triples of calls agree within 10% in median (at least
    `timing.warmup` calls, at most `timing.warmup_s` seconds); returns the per-call seconds."""
    times, start = [], time.perf_counter()
    while True:
        times.append(timed(fn, device))
        if len(times) >= max(timing.warmup, 6):
            recent, before = statistics.median(times[-3:]), statistics.median(times[-6:-3])
            if abs(recent - before) <= 0.1 * before:
                break
        if len(times) >= timing.warmup and time.perf_counter() - start >= timing.warmup_s:
            break
    return statistics.median(times[-3:])


def measure(rows: list[Row], device: torch.device, dtype, timing: Timing,
            progress: Callable[[str], None] = lambda s: None) -> None:
    """Warm every row up and calibrate its batch of calls, then time all rows round-robin
    until each has `timing.repeats` samples and `timing.min_time` seconds per kind."""
    closures = []
    for row in rows:
        x = inputs(row, device, dtype)
        forward, train = calls(row, x)
        for kind, fn in (("forward", forward), ("train", train)):
            row.calls[kind] = max(1, math.ceil(timing.sample_s / max(warm_up(fn, device, timing), 1e-9)))
        if hasattr(getattr(row.module, "cells", [None])[0], "updates"):  # a Skip RNN
            with torch.no_grad():
                _, state = row.module(x, path=row.path)
            row.update_fraction = float(state[-1].float().mean()) / row.length
        row.module.zero_grad(set_to_none=True)  # nothing allocated before profiling is freed during it
        row.peak_mb = peak_memory_mb(train, device)
        closures.append({"forward": forward, "train": train})
        progress(f"warmed up {row.name}")
    gc.disable()  # a collection inside one sample is noise, not the row's cost
    try:
        for r in range(timing.max_rounds):
            for row, fns in zip(rows, closures):
                for kind, samples in (("forward", row.forward_s), ("train", row.train_s)):
                    total = timed(fns[kind], device, row.calls[kind])
                    samples.append(total / row.calls[kind])
                    row.timed_s[kind] += total
            if r + 1 >= timing.repeats and all(min(row.timed_s.values()) >= timing.min_time for row in rows):
                break
            if (r + 1) % 5 == 0:
                progress(f"round {r + 1}")
    finally:
        gc.enable()


def summary(values: list[float], steps: int) -> tuple[float, float]:
    """(median, interquartile range) of per-step times in milliseconds."""
    ms = sorted(v * 1e3 / steps for v in values)
    if len(ms) < 2:
        return ms[0], 0.0
    q = statistics.quantiles(ms, n=4, method="inclusive")
    return statistics.median(ms), q[2] - q[0]


def significant(value: float, digits: int = 4) -> float:
    """Rounded to `digits` significant digits: a ratio of 0.0004 stays 0.0004, not 0.0."""
    return float(f"{value:.{digits}g}")


def table(rows: list[Row]) -> list[dict]:
    """One dict per row. Ratios to torch.nn.LSTM of the same size are paired: the median over
    rounds of (this row's time / torch.nn.LSTM's time in the same round), which cancels the
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
            "forward_ms_per_step": significant(fwd), "forward_iqr": significant(fwd_iqr),
            "train_ms_per_step": significant(train), "train_iqr": significant(train_iqr),
            "forward_seq_per_s": significant(row.batch / (fwd * row.length / 1e3)),
            "train_seq_per_s": significant(row.batch / (train * row.length / 1e3)),
            "peak_mb": round(row.peak_mb, 3),
            "forward_ratio": paired_ratio(row.forward_s, ref.forward_s),
            "train_ratio": paired_ratio(row.train_s, ref.train_s),
            "samples": len(row.train_s), "forward_calls": row.calls.get("forward", 1),
            "train_calls": row.calls.get("train", 1), "forward_timed_s": round(row.timed_s["forward"], 3),
            "train_timed_s": round(row.timed_s["train"], 3), "note": row.note})
    return out


def paired_ratio(times: list[float], reference: list[float]) -> float:
    return significant(statistics.median(a / b for a, b in zip(times, reference)))


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
                    "train_speedup_vs_masked": significant(ref["train_ms_per_step"] / r["train_ms_per_step"]),
                    "forward_speedup_vs_masked": significant(ref["forward_ms_per_step"] / r["forward_ms_per_step"]),
                    "train_speedup_vs_all_updates": None if dense is None else
                    significant(dense["train_ms_per_step"] / r["train_ms_per_step"]),
                    "all_updates_fraction": None if dense is None else dense["update_fraction"]})
    return out
