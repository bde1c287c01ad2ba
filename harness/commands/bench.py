"""Time every variant and computation path against torch.nn.LSTM, in one process and run.

Forward (no_grad) and forward+backward time per step (median and interquartile range over
round-robin repeats after warm-up, CUDA-synchronised), sequences/s, peak memory, and each
as a ratio to torch.nn.LSTM at the same sizes; plus the Skip RNN at ~50% updates against
its masked reference, and the harness overhead of a default tracked run. Writes CSV and
Markdown (with the machine and the command) to --out and prints the Markdown.

examples:
  python -m harness bench                               # standard sizes for the device
  python -m harness bench --quick --out /tmp/bench      # tiny sizes, seconds
  python -m harness bench --variants lstm skip_lstm --length 500 --json
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

import variants
from harness import bench
from harness.errors import UsageError
from harness.spec import cpu_name, git_commit

COLUMNS = ["row", "length", "update_fraction", "forward_ms_per_step", "forward_iqr", "train_ms_per_step",
           "train_iqr", "train_seq_per_s", "peak_mb", "forward_ratio", "train_ratio"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variants", nargs="+", metavar="NAME", help="variants to time (default: all)")
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda", help="default: CUDA when available")
    parser.add_argument("--batch", type=int, metavar="B", help="sequences per batch (default: the device's standard)")
    parser.add_argument("--hidden", type=int, metavar="H", help="state size (default: the device's standard)")
    parser.add_argument("--length", type=int, metavar="T", help="sequence length (default: the device's standard)")
    parser.add_argument("--input-size", type=int, metavar="X", help="input features (default: = hidden)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--repeats", type=int, default=None, metavar="N",
                        help="timed repeats per row (default 10; quick 2)")
    parser.add_argument("--warmup", type=int, default=None, metavar="N",
                        help="untimed calls per row first (default 2; quick 1)")
    parser.add_argument("--threads", type=int, metavar="N", help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats: a smoke test in seconds")
    parser.add_argument("--overhead-steps", type=int, default=None, metavar="N",
                        help="steps of the tracked/untracked training pair (default: train.steps's default; "
                             "quick: 8; 0 skips the measurement)")
    parser.add_argument("--overhead-pairs", type=int, default=None, metavar="N",
                        help="interleaved pairs (default 5; quick 1)")
    parser.add_argument("--out", default="results/bench", metavar="DIR", help="where the CSV and Markdown go")
    parser.add_argument("--tracking-uri", metavar="URI", help="also log the table to this MLflow store")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")


def resolve(args) -> tuple[torch.device, list[dict], list[str]]:
    from harness.train import resolve_device

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
    return device, points, names


def command_line(args) -> str:
    """The command as typed, rebuilt from the parsed options (works in-process as well)."""
    parts = ["python", "-m", "harness", "bench"]
    for action, value in sorted(vars(args).items()):
        if action.startswith("_") or action == "command" or value in (None, False):
            continue
        flag = "--" + action.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):
            parts += [flag, *map(str, value)]
        elif not (action in ("device", "dtype", "out") and value == {"device": "auto", "dtype": "float32",
                                                                    "out": "results/bench"}[action]):
            parts += [flag, str(value)]
    return shlex.join(parts)


def machine(device: torch.device) -> dict:
    commit = git_commit()
    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "commit": commit,
            "device": str(device), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "loadavg": " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "",
            "command": ""}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def markdown(records, speedups, overhead, info, dtype) -> str:
    lines = [f"# bench: {info['device']}, {dtype}", "",
             f"- machine: {info['cpu']} ({info['cores']} cores; torch threads {info['torch_threads']})"
             + (f"; GPU {info['gpu']}" if "gpu" in info else ""),
             f"- torch {info['torch']}, python {info['python']}, commit {info['commit']}",
             f"- command: `{info['command']}`", f"- date: {info['date']} (1-min load before: {info['loadavg_start']})",
             "- times are ms per sequence step: median (interquartile range) over round-robin repeats;"
             " forward = no_grad, train = forward + backward of sum(outputs)",
             "- ratios to torch.nn.LSTM: median over rounds of (row time / torch.nn.LSTM time in the same"
             " round); peak MB = " + ("torch.cuda.max_memory_allocated during a train call"
                                      if info["device"].startswith("cuda") else
                                      "high-water mark of PyTorch's CPU allocator during a train call"
                                      " (profiler memory events)"),
             "- updates: the Skip RNN's fraction of steps that update (default initialisation: all;"
             " @fixed: W_p = 0, Δũ = 0.4; @learned: random W_p); compile time: none (no path compiles)", ""]
    sizes = sorted({(r["batch"], r["hidden"], r["length"]) for r in records})
    for B, H, T in sizes:
        lines += [f"## B={B} H={H} T={T}", "",
                  "| row | updates | forward ms/step | train ms/step | train seq/s | peak MB "
                  "| forward × LSTM | train × LSTM |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in records:
            if (r["batch"], r["hidden"], r["length"]) != (B, H, T):
                continue
            upd = "" if r["update_fraction"] is None else f"{r['update_fraction']:.0%}"
            lines.append(f"| {r['row']} | {upd} | {r['forward_ms_per_step']:.4g} ({r['forward_iqr']:.2g}) | "
                         f"{r['train_ms_per_step']:.4g} ({r['train_iqr']:.2g}) | {r['train_seq_per_s']:.4g} | "
                         f"{r['peak_mb']:.3g} | {r['forward_ratio']:.2f} | {r['train_ratio']:.2f} |")
        lines.append("")
    if speedups:
        lines += ["## Skip RNN: the fast path against the masked reference (explicit, every step computed)", "",
                  "| variant | gate | T | updates | train speedup | forward speedup "
                  "| train speedup vs fast at all-updates |",
                  "|---|---|---|---|---|---|---|"]
        for s in speedups:
            dense = "" if s["train_speedup_vs_all_updates"] is None else \
                f"{s['train_speedup_vs_all_updates']:.2f} (at {s['all_updates_fraction']:.0%})"
            lines.append(f"| {s['variant']} | {s['gate']} | {s['length']} | {s['update_fraction']:.0%} | "
                         f"{s['train_speedup_vs_masked']:.2f} | {s['forward_speedup_vs_masked']:.2f} | {dense} |")
        lines.append("")
    if overhead:
        lines += ["## Harness overhead", "",
                  f"Default `lstm` run ({overhead['steps']} steps), tracked (MLflow on SQLite, gradient probes, "
                  f"gate statistics) vs untracked, {overhead['pairs']} interleaved pairs: median "
                  f"{overhead['tracked_s']:.2f} s vs {overhead['untracked_s']:.2f} s; tracked/untracked ratio "
                  f"{overhead['ratio']:.3f} (median of the pairs; range {overhead['ratio_min']:.3f} to "
                  f"{overhead['ratio_max']:.3f}).", ""]
    return "\n".join(lines)


def main(args) -> int:
    device, points, names = resolve(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    repeats = args.repeats or (2 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    info = machine(device)
    info["loadavg_start"] = info.pop("loadavg")
    info["command"] = command_line(args)
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if not args.json else (lambda s: None)
    records = []
    for point in points:
        rows = bench.make_rows(names, point, args.input_size, device, dtype)
        bench.measure(rows, device, dtype, repeats, warmup, progress=lambda s: say(f"[T={point['length']}] {s}"))
        records += bench.table(rows)
    speedups = bench.skip_speedups(records)
    steps = args.overhead_steps if args.overhead_steps is not None else (8 if args.quick else None)
    if steps is None:
        from harness.train import TrainConfig
        steps = TrainConfig().steps
    overhead = None
    if steps > 0:
        say(f"harness overhead: {steps}-step runs, tracked and untracked")
        pairs = args.overhead_pairs or (1 if args.quick else 5)
        overhead = bench.harness_overhead(steps, pairs, str(device), args.quick)
    text = markdown(records, speedups, overhead, info, args.dtype)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"bench-{device.type}" + ("-quick" if args.quick else "")
    with open(out / f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    (out / f"{stem}.md").write_text(text + "\n")
    if args.tracking_uri:
        log_mlflow(args.tracking_uri, records, speedups, overhead, info, out, stem)
    if args.json:
        print(json.dumps({"machine": info, "rows": records, "skip": speedups, "overhead": overhead,
                          "files": [str(out / f"{stem}.csv"), str(out / f"{stem}.md")]}))
    else:
        print(text)
    return 0


def log_mlflow(uri, records, speedups, overhead, info, out, stem) -> None:
    import re

    from harness.tracking import MLflowTracker

    tracker = MLflowTracker(uri, "bench")
    tracker.start(run_name=f"bench-{info['device']}", tags={"kind": "bench", "commit": info["commit"]})
    tracker.log_params({k: v for k, v in info.items()})
    metrics = {}
    for r in records:
        key = re.sub(r"[^\w./ -]", "_", f"{r['row']} T{r['length']}")
        metrics.update({f"{key}/train_ratio": r["train_ratio"], f"{key}/forward_ratio": r["forward_ratio"],
                        f"{key}/train_ms_per_step": r["train_ms_per_step"]})
    for s in speedups:
        metrics[f"skip/{s['variant']}_{s['gate']}_T{s['length']}/train_speedup"] = s["train_speedup_vs_masked"]
    if overhead:
        metrics["harness_overhead_ratio"] = overhead["ratio"]
    tracker.log_metrics(metrics, 0)
    for suffix in (".csv", ".md"):
        tracker.log_artifact(out / f"{stem}{suffix}")
    tracker.end("FINISHED")
