"""`--help` stays fast because it imports nothing heavy: a claim's declaration (name, statement,
budgets) imports without its analysis. Checked on what a fresh interpreter imports (no timing)."""
from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "pandas", "scipy", "matplotlib", "mlflow", "optuna")


@pytest.mark.parametrize("command", ["reproduce", "report", "data", None])
def test_help_imports_no_heavy_library(command):
    argv = ["--help"] if command is None else [command, "--help"]
    program = ("import sys, contextlib, io\nfrom harness.cli import main\n"
               "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
               f"    try:\n        main({argv!r})\n    except SystemExit:\n        pass\n"
               "assert 'usage' in out.getvalue(), out.getvalue()\n"
               f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"{command} --help imported {done.stdout.strip()}"


def test_reproduce_help_lists_every_claim():
    from harness import claims

    done = subprocess.run([sys.executable, "-m", "harness", "reproduce", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and all(name in done.stdout for name in claims.available())
