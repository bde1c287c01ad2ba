"""Check a GPU machine in one command: the CUDA tests, every cell and path timed on the GPU
against torch.nn.LSTM (cuDNN), and a smoke reproduction of the horizon claim on the device.

examples:
  python -m harness doctor                  # on a CUDA machine, about 5-8 minutes on one H100/H200
  python -m harness doctor --out /tmp/dr    # the table and logs elsewhere (default results/bench)

Prints one table (step, outcome, seconds, detail) and writes it, with each step's log, as
doctor-<gpu>.md under --out. On a machine without CUDA it says so in one line and exits 0
(nothing to check). Each step has a time limit, so a hung step cannot hold the machine.
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (name, seconds allowed): together within the 8 minutes the issue allows on one GPU
LIMITS = {"cuda tests": 200, "bench": 200, "horizon smoke": 150}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", help="where the table and logs go (default results/bench)")
    parser.add_argument("--device", default="cuda", metavar="cuda|cuda:N", help="the GPU to check (default cuda)")


def step(name: str, argv: list[str], log: Path, cwd: Path) -> dict:
    """Run one check as a subprocess within its time limit; its outcome and the log's last line."""
    started = time.perf_counter()
    with open(log, "w") as out:
        try:
            code = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=LIMITS[name]).returncode
            outcome = "passed" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            outcome = f"timed out after {LIMITS[name]} s"
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return {"step": name, "outcome": outcome, "seconds": round(time.perf_counter() - started, 1),
            "detail": lines[-1][:160] if lines else "", "log": log.name}


def main(args) -> int:
    import torch

    from harness.errors import UsageError
    from harness.outdirs import make_dirs
    from harness.training.spec import git_commit

    if not torch.cuda.is_available():
        print(f"doctor: no CUDA device on this machine (torch {torch.__version__}); nothing to check", file=sys.stderr)
        return 0
    if not re.fullmatch(r"cuda(:\d+)?", args.device):
        raise UsageError(f"--device {args.device!r}: expected cuda or cuda:N")
    gpu = torch.cuda.get_device_name(torch.device(args.device))
    root = Path(__file__).resolve().parents[2]
    out = Path(args.out or root / "results" / "bench")
    make_dirs((out, "--out"))
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu).strip("-").lower()
    python = [sys.executable]
    rows = []
    if (root / "tests").is_dir():
        # In one process (-n 0): the CUDA tests share one device, and the suite's workers would too.
        tests = [*python, "-m", "pytest", "-q", "-n", "0", "-m", "gpu", "tests", "--deselect", "tests/test_doctor.py"]
        rows.append(step("cuda tests", tests, out / f"doctor-{slug}-tests.log", root))
    else:
        rows.append({"step": "cuda tests", "outcome": "skipped", "seconds": 0.0,
                     "detail": "no tests/ folder beside the installed harness (run from a checkout)", "log": ""})
    rows.append(step("bench", [*python, "-m", "harness", "bench", "--device", args.device, "--out", str(out)],
                     out / f"doctor-{slug}-bench.log", root))
    with tempfile.TemporaryDirectory(prefix="harness-doctor-") as tmp:
        env_store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        rows.append(step("horizon smoke", [*python, "-m", "harness", "reproduce", "horizon", "--budget", "smoke",
                                           "--device", args.device, "--tracking-uri", env_store],
                         out / f"doctor-{slug}-horizon.log", Path(tmp)))
    from tabulate import tabulate

    table = tabulate([[r["step"], r["outcome"], r["seconds"], r["detail"]] for r in rows],
                     headers=["step", "outcome", "seconds", "detail"], tablefmt="github")
    header = (f"# doctor: {gpu}\n\n`python -m harness doctor` on {datetime.date.today()}, commit {git_commit()}, "
              f"torch {torch.__version__}, CUDA {torch.version.cuda}, host {os.uname().nodename}.\n"
              "Logs beside this file; bench rows in bench-cuda.md.\n\n")
    (out / f"doctor-{slug}.md").write_text(header + table + "\n")
    print(table)
    print(f"written: {out / f'doctor-{slug}.md'}", file=sys.stderr)
    return 0 if all(r["outcome"] in ("passed", "skipped") for r in rows) else 1
