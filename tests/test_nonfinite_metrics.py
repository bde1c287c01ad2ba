"""±inf and NaN metrics read back as themselves from the run table every report reads, on a
real SQLite store (which keeps ±inf as ±1.797e308): logged by the tracker, and by a CLI run."""
from __future__ import annotations

import json
import math
import sys

from helpers import run_cli

from harness.tracking import open_runs, open_tracker

VALUES = {"plus_inf": math.inf, "minus_inf": -math.inf, "not_a_number": math.nan, "finite": 1.5}


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_the_run_table_and_histories_give_back_infinities_and_nan(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = open_tracker(uri, "values")
    run_id = tracker.start(run_name="values", tags={})
    tracker.log_metrics(VALUES, 0)
    tracker.log_metrics({"plus_inf": 2.0, "large": -sys.float_info.max / 2}, 1)
    tracker.log_metrics({"plus_inf": math.inf}, 2)
    tracker.end()
    runs = open_runs(uri)
    row = runs.table("values").iloc[0]
    assert all(same(row[k], v) for k, v in VALUES.items()), {k: row[k] for k in VALUES}
    assert runs.history([run_id], "plus_inf")["value"].tolist() == [math.inf, 2.0, math.inf]
    assert runs.history([run_id], "minus_inf")["value"].tolist() == [-math.inf]
    assert row["large"] == -sys.float_info.max / 2, "a large finite value stays itself"
    assert math.isnan(runs.history([run_id], "not_a_number")["value"].item())


PLUGIN = '''
import math
from tasks import register
from tasks.recall import Recall


@register
class InfRecall(Recall):
    """Delayed recall that also reports non-finite numbers."""
    name = "inf_recall"

    def summarise(self, means):
        return {**means, "plus_inf": math.inf, "minus_inf": -math.inf, "not_a_number": math.nan}
'''


def test_a_cli_run_logs_non_finite_metrics_that_read_back_as_themselves(tmp_path):
    (tmp_path / "inf_task.py").write_text(PLUGIN)
    result = run_cli("run", "--plugin", "inf_task", "--task", "inf_recall", "--set", "train.steps=2",
                     "--set", "task.length=4", "--set", "task.val_size=16", "--set", "task.test_size=16",
                     "--set", "model.hidden_size=4", "--set", "track.probe=false", "--json", cwd=tmp_path,
                     env={"PYTHONPATH": f"{tmp_path}:{__import__('os').environ.get('PYTHONPATH', '')}"})
    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    row = open_runs(info["tracking_uri"]).table("inf_recall").iloc[0]
    for split in ("val", "test"):
        assert row[f"{split}_plus_inf"] == math.inf and row[f"{split}_minus_inf"] == -math.inf
        assert math.isnan(row[f"{split}_not_a_number"])
