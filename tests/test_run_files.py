"""A report's inputs kept as files (harness.tracking.files, harness.report.inputs), on a real
SQLite store: runs read back as the same neutral table (±inf, NaN, empty and missing values,
text that looks like numbers or holds commas, quotes and newlines), metric histories and
artifacts answered from the files exactly as from the store."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.errors import UsageError
from harness.report.inputs import Inputs, Recording
from harness.tracking import Outcome, neutral_table, open_runs, open_tracker, read_runs_csv, runs_csv


@pytest.fixture
def store(tmp_path):
    """Three runs of one experiment with awkward values, one with a history and artifacts."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ids = []
    for n, (params, metrics, tags, outcome) in enumerate([
        ({"model.variant": "lstm", "train.lr": "0.001", "task.note": "", "model.bidirectional": "True"},
         {"plus": math.inf, "minus": -math.inf, "nan": math.nan, "acc": 0.1 + 0.2, "pi": math.pi},
         {"fingerprint": "0042"}, Outcome.FINISHED),
        ({"model.variant": "gru", "train.lr": "None", "task.other": 'a, "quoted"\nline',
          "model.bidirectional": "False"}, {"acc": 1e-300}, {"fingerprint": "abc", "claim_point": ""},
         Outcome.DIVERGED),
        ({"model.variant": "gru", "train.lr": "0.01"}, {}, {"fingerprint": "abd"}, Outcome.KILLED),
    ]):
        tracker = open_tracker(uri, "files")
        tracker.start(run_name=f"run-{n}", tags=tags)
        tracker.log_params(params)
        tracker.log_metrics(metrics, 1)
        if n == 0:
            tracker.log_metrics({"acc": 0.5}, 2)
            tracker.log_metrics({"acc": math.inf}, 3)
            flow = tracker.local_dir / "gradient_flow.csv"
            flow.write_text("step,distance,grad\n0,1,0.25\n0,2,1e-08\n")
            tracker.log_artifact(flow)
            empty = tracker.local_dir / "empty.csv"
            empty.write_text("step,distance\n")
            tracker.log_artifact(empty)
            (tracker.local_dir / "note.txt").write_bytes(b"\x00\xffnot text")
            tracker.log_artifact(tracker.local_dir / "note.txt")
        tracker.end(outcome)
        ids.append(tracker.run_id)
    return open_runs(uri), ids


def test_runs_read_back_from_their_file_as_the_same_neutral_table(store):
    runs, _ = store
    records = runs.records("files")
    text = runs_csv(records)
    again = read_runs_csv(text)
    exact = {"check_like": True, "check_exact": True}  # column order aside (the file sorts them by name)
    pd.testing.assert_frame_equal(neutral_table(again), neutral_table(records), **exact)
    table = neutral_table(again).set_index("fingerprint")
    assert table.loc["0042", "plus"] == math.inf and table.loc["0042", "minus"] == -math.inf
    assert math.isnan(table.loc["0042", "nan"]) and table.loc["0042", "acc"] == math.inf  # its last value
    assert table.loc["0042", "pi"] == math.pi and table.loc["abc", "acc"] == 1e-300 and table.loc["abc", "task.other"] == 'a, "quoted"\nline'
    kept = {r.tags["fingerprint"]: r for r in again}
    assert kept["0042"].params["task.note"] == "" and "task.note" not in kept["abc"].params, "empty is not missing"
    assert kept["abc"].tags["claim_point"] == "" and "claim_point" not in kept["0042"].tags
    assert table.loc["0042", "model.bidirectional"] is True and table["outcome"].tolist() == [
        r.outcome for r in records]
    assert [r.run_id for r in again] == [r.run_id for r in records] and runs_csv(again) == text


@pytest.mark.parametrize("text,problem", [
    ("", "the first columns must be run_id"),
    ('"run_id","outcome","started","ended","colour"\n', "column 'colour' is none of"),
    ('"run_id","outcome","started","ended"\n"a","exploded",nan,nan\n', "'exploded' is not a valid Outcome"),
    ('"run_id","outcome","started","ended","metrics.x"\n"a","finished",nan,nan,"high"\n', "metric x is text"),
    ('"run_id","outcome","started","ended"\n"a","finished",nan\n', "line 2 has 3 values, the header 4"),
])
def test_a_file_that_is_not_a_runs_table_is_refused_naming_the_problem(text, problem):
    with pytest.raises(ValueError, match="not a runs table") as caught:
        read_runs_csv(text)
    assert problem in str(caught.value)


def test_histories_and_artifacts_are_answered_from_the_files_as_from_the_store(store, tmp_path):
    runs, ids = store
    inputs = Inputs.of(runs.records("files"))
    context = Recording(inputs, runs, tmp_path / "work").context()
    history = context.history(ids, "acc")
    direct = runs.history(ids, "acc")
    pd.testing.assert_frame_equal(history, direct, check_exact=True)
    assert history["value"].tolist() == [0.1 + 0.2, 0.5, math.inf, 1e-300]
    flow = pd.read_csv(context.artifact(ids[0], "gradient_flow.csv"))
    assert flow["grad"].tolist() == [0.25, 1e-08]
    header_only = pd.read_csv(context.artifact(ids[0], "empty.csv"))
    binary = context.artifact(ids[0], "note.txt").read_bytes()
    with pytest.raises(Exception):
        context.artifact(ids[1], "gradient_flow.csv")  # the store has none: nothing kept

    folder = tmp_path / "claim"
    folder.mkdir()
    inputs.write(folder)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        f"artifacts/{ids[0]}/empty.csv", f"artifacts/{ids[0]}/note.txt", "artifacts/gradient_flow.csv",
        "histories.csv", "runs.csv"]
    kept = Inputs.read(folder)
    again = kept.context(tmp_path / "again")
    pd.testing.assert_frame_equal(again.history(ids, "acc"), history, check_exact=True)
    pd.testing.assert_frame_equal(again.history(ids[1:], "acc"), runs.history(ids[1:], "acc"), check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(again.artifact(ids[0], "gradient_flow.csv")), flow, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(again.artifact(ids[0], "empty.csv")), header_only)
    assert again.artifact(ids[0], "note.txt").read_bytes() == binary == b"\x00\xffnot text"
    with pytest.raises(FileNotFoundError):
        again.artifact(ids[1], "gradient_flow.csv")
    with pytest.raises(UsageError, match="history of metric 'loss'"):
        again.history(ids, "loss")  # never asked of the store: the files cannot answer it
    written = tmp_path / "rewritten"
    written.mkdir()
    kept.write(written)
    for name in ("runs.csv", "histories.csv", "artifacts/gradient_flow.csv"):
        assert (written / name).read_bytes() == (folder / name).read_bytes()
