"""A multi-worker sweep shows its study's counts as they change (harness/sweep/progress.py):
the first line when the workers start, the last when they are done, on stderr."""
from __future__ import annotations

from helpers import run_cli

TINY = ["--set", "model.hidden_size=8", "--set", "task.length=5", "--set", "train.batch_size=16",
        "--set", "task.val_size=64", "--set", "task.test_size=64", "--set", "track.probe_points=1",
        "--set", "train.steps=10", "--set", "track.enabled=false"]


def test_a_two_worker_sweep_reports_the_study_counts(tmp_path):
    done = run_cli("sweep", "--variant", "lstm", "--trials", "4", "--workers", "2", "--pruner", "none", *TINY,
                   cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("study lstm-recall-L5: ") and
             " complete, " in line]
    assert len(lines) >= 2, done.stderr[-3000:]
    first = [int(word) for word in lines[0].split(": ", 1)[1].split(" (")[0].split() if word.isdigit()]
    assert len(first) == 5 and sum(first) == 4, "complete, pruned, failed, running, waiting: the 4 trials"
    assert lines[-1].startswith("study lstm-recall-L5: 4 complete, 0 pruned, 0 failed, 0 running, 0 waiting (")
    assert len(set(lines[1:-1])) == len(lines[1:-1]), "a line only when the counts change"
