"""Time every variant and computation path against torch.nn.LSTM, in one process and run.

Forward (no_grad) and forward+backward time per step (median and interquartile range over
round-robin samples after a warm-up that waits for stable times; at least --repeats samples
and --min-time seconds per row; CUDA-synchronised), sequences/s, peak memory, and each as a
ratio to torch.nn.LSTM at the same sizes; plus the Skip RNN at ~50% updates against its
masked reference, and the harness overhead: the fixed cost in seconds of a tracked run over
the same run untracked. On a CPU the bench uses the thread count of a run unless --threads
says otherwise. Writes CSV and Markdown (with the machine and the command) and prints the
Markdown: into --out; without --out, a full bench writes results/bench/ (the committed
table), --quick a new temporary directory (it is a smoke test, not a result), and
--overhead-only no files.

examples:
  python -m harness bench                               # standard sizes for the device
  python -m harness bench --quick                       # tiny sizes, seconds; files in a temp dir
  python -m harness bench --overhead-only               # the fixed per-run cost of tracking, in s
  python -m harness bench --variants lstm skip_lstm --length 500 --json
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

import variants
from harness.bench import speed as bench
from harness.training import threads
from harness.bench.overhead import OVERHEAD_ONLY_STEPS, harness_overhead
from harness.device import resolve_device
from harness.errors import UsageError
from harness.training.spec import cpu_name, git_commit

CSV_FIELDS = ["row", "kind", "variant", "path", "batch", "hidden", "length", "update_fraction",
              "forward_ms_per_step", "forward_iqr", "train_ms_per_step", "train_iqr", "forward_seq_per_s",
              "train_seq_per_s", "peak_mb", "forward_ratio", "train_ratio", "samples", "forward_calls",
              "train_calls", "note"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variants", nargs="+", metavar="NAME", help="variants to time (default: all)")
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda", help="default: CUDA when available")
    parser.add_argument("--batch", type=int, metavar="B", help="sequences per batch (default: the device's standard)")
    parser.add_argument("--hidden", type=int, metavar="H", help="state size (default: the device's standard)")
    parser.add_argument("--length", type=int, metavar="T", help="sequence length (default: the device's standard)")
    parser.add_argument("--input-size", type=int, metavar="X", help="input features (default: = hidden)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--repeats", type=int, metavar="N", help="timed samples per row, at least (default 10; quick 5)")
    parser.add_argument("--min-time", type=float, metavar="S",
                        help="seconds of timed calls per row and kind, at least (default 1; quick 0.1)")
    parser.add_argument("--warmup", type=int, metavar="N", help="untimed calls per row first, at least; more "
                        "until the call time is stable (default 2; quick 1)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch CPU threads (default: as a run, train.threads=0; see harness/training/threads.py)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and short timing: a smoke test in seconds")
    parser.add_argument("--overhead-only", action="store_true",
                        help=f"only the harness overhead (default {OVERHEAD_ONLY_STEPS}-step runs, 5 pairs)")
    parser.add_argument("--overhead-steps", type=int, metavar="N",
                        help="steps of the tracked/untracked training pair (default: train.steps's default; "
                             f"quick: 8; --overhead-only: {OVERHEAD_ONLY_STEPS}; 0 skips the measurement)")
    parser.add_argument("--overhead-pairs", type=int, metavar="N", help="interleaved pairs (default 5; quick 1)")
    parser.add_argument("--out", metavar="DIR", help="where the CSV and Markdown go (default: results/bench; "
                        "--quick: a new temporary directory; --overhead-only: no files)")
    parser.add_argument("--tracking-uri", metavar="URI", help="also log the table to this MLflow store")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")


def resolve(args) -> tuple[torch.device, list[dict], list[str], bench.Timing]:
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        raise UsageError(str(err).replace("train.device", "--device")) from None
    names = args.variants or variants.available()
    for name in names:
        variants.get(name)  # unknown names raise, listing the valid ones
    points = [dict(bench.QUICK)] if args.quick else [dict(p) for p in bench.STANDARD[device.type]]
    for point in points:
        for key in ("batch", "hidden", "length"):
            if getattr(args, key) is not None:
                point[key] = getattr(args, key)
            if point[key] < 1:
                raise UsageError(f"--{key} must be >= 1")
    if any(getattr(args, k) is not None for k in ("batch", "hidden", "length")):
        points = points[:1]  # explicit sizes: one point
    timing = bench.QUICK_TIMING if args.quick else bench.STANDARD_TIMING
    changes = {k: getattr(args, k) for k in ("repeats", "min_time", "warmup") if getattr(args, k) is not None}
    for key, value in changes.items():
        if value < (0 if key == "warmup" else 1e-9) or (key == "repeats" and value < 1):
            raise UsageError(f"--{key.replace('_', '-')} must be {'>= 0' if key == 'warmup' else '> 0'}")
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be >= 1")
    return device, points, names, dataclasses.replace(timing, **changes)


def command_line(args) -> str:
    """The command as typed, rebuilt from the parsed options (works in-process as well)."""
    parts = ["python", "-m", "harness", "bench"]
    for action, value in sorted(vars(args).items()):
        if action.startswith("_") or action == "command" or value is None or value is False:  # 0 is a value
            continue
        flag = "--" + action.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):
            parts += [flag, *map(str, value)]
        elif not (action in ("device", "dtype") and value == {"device": "auto", "dtype": "float32"}[action]):
            parts += [flag, str(value)]
    return shlex.join(parts)


def machine(device: torch.device) -> dict:
    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "commit": git_commit(),
            "device": str(device), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "loadavg": " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "",
            "command": ""}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def header(info: dict, dtype: str, timing: bench.Timing | None) -> list[str]:
    lines = [f"# bench: {info['device']}, {dtype}", "",
             f"- machine: {info['cpu']} ({info['cores']} cores; torch threads {info['torch_threads']})"
             + (f"; GPU {info['gpu']}" if "gpu" in info else ""),
             f"- torch {info['torch']}, python {info['python']}, commit {info['commit']}",
             f"- command: `{info['command']}`", f"- date: {info['date']} (1-min load before: {info['loadavg_start']})"]
    if timing is None:
        return lines + [""]
    peak = ("torch.cuda.max_memory_allocated during a train call" if info["device"].startswith("cuda") else
            "high-water mark of PyTorch's CPU allocator during a train call (profiler memory events)")
    return lines + [
        "- times are ms per sequence step: median (interquartile range) over round-robin samples, each the mean of"
        f" a calibrated batch of calls; at least {timing.repeats} samples and {timing.min_time:g} s of calls per"
        " row and kind, after a warm-up until stable; forward = no_grad, train = forward + backward of sum(outputs)",
        "- ratios to torch.nn.LSTM: median over rounds of (row time / torch.nn.LSTM time in the same round);"
        f" peak MB = {peak}",
        "- updates: the Skip RNN's fraction of steps that update (default initialisation: all;"
        " @fixed: W_p = 0, Δũ = 0.4; @learned: random W_p); compile time: none (no path compiles)", ""]


def markdown(records, speedups, overhead, info, dtype, timing) -> str:
    lines = header(info, dtype, timing if records else None)
    for B, H, T in sorted({(r["batch"], r["hidden"], r["length"]) for r in records}):
        lines += [f"## B={B} H={H} T={T}", "",
                  "| row | updates | forward ms/step | train ms/step | train seq/s | peak MB "
                  "| forward × LSTM | train × LSTM |", "|---|---|---|---|---|---|---|---|"]
        for r in records:
            if (r["batch"], r["hidden"], r["length"]) != (B, H, T):
                continue
            upd = "" if r["update_fraction"] is None else f"{r['update_fraction']:.0%}"
            lines.append(f"| {r['row']} | {upd} | {r['forward_ms_per_step']:.4g} ({r['forward_iqr']:.2g}) | "
                         f"{r['train_ms_per_step']:.4g} ({r['train_iqr']:.2g}) | {r['train_seq_per_s']:.4g} | "
                         f"{r['peak_mb']:.3g} | {r['forward_ratio']:.3g} | {r['train_ratio']:.3g} |")
        lines.append("")
    if speedups:
        lines += ["## Skip RNN: the fast path against the masked reference (explicit, every step computed)", "",
                  "| variant | gate | T | updates | train speedup | forward speedup "
                  "| train speedup vs fast at all-updates |", "|---|---|---|---|---|---|---|"]
        for s in speedups:
            dense = "" if s["train_speedup_vs_all_updates"] is None else \
                f"{s['train_speedup_vs_all_updates']:.3g} (at {s['all_updates_fraction']:.0%})"
            lines.append(f"| {s['variant']} | {s['gate']} | {s['length']} | {s['update_fraction']:.0%} | "
                         f"{s['train_speedup_vs_masked']:.3g} | {s['forward_speedup_vs_masked']:.3g} | {dense} |")
        lines.append("")
    if overhead:
        lines += ["## Harness overhead", "",
                  f"Default `lstm` run ({overhead['steps']} steps), tracked (MLflow on SQLite, gradient probes, "
                  f"gate statistics, figure, artifacts) vs untracked, {overhead['pairs']} interleaved pairs: "
                  f"**fixed cost per tracked run {overhead['fixed_s']:.2f} s** (median of tracked - untracked; "
                  f"range {overhead['fixed_min_s']:.2f} to {overhead['fixed_max_s']:.2f} s); median "
                  f"{overhead['tracked_s']:.2f} s vs {overhead['untracked_s']:.2f} s, ratio {overhead['ratio']:.3f} "
                  f"(range {overhead['ratio_min']:.3f} to {overhead['ratio_max']:.3f}).", ""]
    return "\n".join(lines)


def output_dir(args) -> Path | None:
    """--out; else results/bench for a full bench, a new temporary folder for --quick (a
    smoke test must not rewrite the committed table), nothing for --overhead-only."""
    if args.out:
        return Path(args.out)
    if args.overhead_only:
        return None
    return Path(tempfile.mkdtemp(prefix="harness-bench-")) if args.quick else Path("results/bench")


def main(args) -> int:
    device, points, names, timing = resolve(args)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(args.threads or threads.automatic())
        return run(args, device, points, names, timing)
    finally:
        torch.set_num_threads(before)


def run(args, device, points, names, timing) -> int:
    info = machine(device)
    info["loadavg_start"] = info.pop("loadavg")
    info["command"] = command_line(args)
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if not args.json else (lambda s: None)
    records = []
    for point in points if not args.overhead_only else []:
        rows = bench.make_rows(names, point, args.input_size, device, getattr(torch, args.dtype))
        bench.measure(rows, device, getattr(torch, args.dtype), timing,
                      progress=lambda s: say(f"[T={point['length']}] {s}"))
        records += bench.table(rows)
    speedups = bench.skip_speedups(records)
    steps = args.overhead_steps
    if steps is None:
        from harness.training.train_config import TrainConfig
        steps = 8 if args.quick else OVERHEAD_ONLY_STEPS if args.overhead_only else TrainConfig().steps
    overhead = None
    if steps > 0:
        say(f"harness overhead: {steps}-step runs, tracked and untracked")
        overhead = harness_overhead(steps, args.overhead_pairs or (1 if args.quick else 5), str(device), args.quick)
    text = markdown(records, speedups, overhead, info, args.dtype, timing)
    out = output_dir(args)
    files = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stem = "bench-overhead" if args.overhead_only else f"bench-{device.type}" + ("-quick" if args.quick else "")
        if records:
            with open(out / f"{stem}.csv", "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(records)
            files.append(out / f"{stem}.csv")
        (out / f"{stem}.md").write_text(text + "\n")
        files.append(out / f"{stem}.md")
        say(f"wrote {', '.join(map(str, files))}")
    if args.tracking_uri:
        log_mlflow(args.tracking_uri, records, speedups, overhead, info, files)
    if args.json:
        print(json.dumps({"machine": info, "rows": records, "skip": speedups, "overhead": overhead,
                          "files": [str(f) for f in files]}))
    else:
        print(text)
    return 0


def log_mlflow(uri, records, speedups, overhead, info, files) -> None:
    import re

    from harness.tracking import open_tracker

    tracker = open_tracker(uri, "bench")
    tracker.start(run_name=f"bench-{info['device']}", tags={"kind": "bench", "commit": info["commit"]})
    tracker.log_params(dict(info))
    metrics = {}
    for r in records:
        key = re.sub(r"[^\w./ -]", "_", f"{r['row']} T{r['length']}")
        metrics.update({f"{key}/train_ratio": r["train_ratio"], f"{key}/forward_ratio": r["forward_ratio"],
                        f"{key}/train_ms_per_step": r["train_ms_per_step"]})
    for s in speedups:
        metrics[f"skip/{s['variant']}_{s['gate']}_T{s['length']}/train_speedup"] = s["train_speedup_vs_masked"]
    if overhead:
        metrics.update({"harness_overhead_ratio": overhead["ratio"], "harness_fixed_cost_s": overhead["fixed_s"]})
    tracker.log_metrics(metrics, 0)
    for path in files:
        tracker.log_artifact(path)
    tracker.end()
