"""`runs` and `compare` through the CLI, on a real SQLite store with real runs."""
from __future__ import annotations

import json

import pytest
from helpers import run_cli

TINY = ["--set", "model.hidden_size=8", "--set", "task.length=5", "--set", "train.batch_size=16",
        "--set", "train.steps=12", "--set", "train.eval_every=4", "--set", "track.probe_points=2"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two runs (lstm, gru) in one experiment and one (lstm, seed 1) in another."""
    folder = tmp_path_factory.mktemp("runs")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    ids = {}
    for variant, seed, experiment in (("lstm", 0, "a"), ("gru", 0, "a"), ("lstm", 1, "b")):
        done = run_cli("run", "--variant", variant, "--seed", seed, "--experiment", experiment, *TINY,
                       "--tracking-uri", uri, "--json", cwd=folder)
        assert done.returncode == 0, done.stderr
        ids[(variant, seed)] = json.loads(done.stdout.strip().splitlines()[-1])["run_id"]
    return folder, uri, ids


def test_runs_lists_filters_and_picks_columns(store):
    folder, uri, ids = store
    every = json.loads(run_cli("runs", "--tracking-uri", uri, "--json", cwd=folder).stdout)
    assert sorted(r["run_id"] for r in every) == sorted(ids.values())
    assert {r["experiment"] for r in every} == {"a", "b"}
    picked = run_cli("runs", "--tracking-uri", uri, "--experiment", "a", "--where", "model.variant=lstm",
                     "--columns", "run_id,train.seed,test_accuracy", "--json", cwd=folder)
    rows = json.loads(picked.stdout)
    assert [list(r) for r in rows] == [["run_id", "train.seed", "test_accuracy"]]
    assert rows[0]["run_id"] == ids[("lstm", 0)] and 0.0 <= rows[0]["test_accuracy"] <= 1.0
    numeric = json.loads(run_cli("runs", "--tracking-uri", uri, "--where", "train.seed>=1", "--json",
                                 cwd=folder).stdout)
    assert [r["run_id"] for r in numeric] == [ids[("lstm", 1)]]
    text = run_cli("runs", "--tracking-uri", uri, cwd=folder)
    assert text.returncode == 0 and all(i in text.stdout for i in ids.values())


@pytest.mark.parametrize("args, says", [
    (["--where", "model.variant"], "expected COLUMN OP VALUE"),
    (["--where", "nope=1"], "no column 'nope'"),
    (["--where", "model.variant>3"], "numeric column"),
    (["--columns", "run_id,nope"], "no column 'nope'"),
    (["--limit", "0"], "--limit"),
])
def test_runs_refuses_bad_filters_in_one_line(store, args, says):
    folder, uri, _ = store
    done = run_cli("runs", "--tracking-uri", uri, *args, cwd=folder)
    assert done.returncode == 2 and says in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_compare_shows_the_difference_and_draws_one_figure(store):
    folder, uri, ids = store
    a, b = ids[("lstm", 0)], ids[("gru", 0)]
    out = folder / "figures" / "lstm-gru.png"
    done = run_cli("compare", a[:10], b, "--tracking-uri", uri, "--out", out, "--json", cwd=folder)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [r["run_id"] for r in result["runs"]] == [a, b]
    assert result["config"]["model.variant"] == ["lstm", "gru"] and "train.seed" not in result["config"]
    assert len(result["metrics"]["test_accuracy"]) == 2
    assert out.read_bytes().startswith(b"\x89PNG")
    text = run_cli("compare", a, ids[("lstm", 1)], "--tracking-uri", uri, "--out", folder / "x.svg", cwd=folder)
    assert text.returncode == 0 and "train.seed" in text.stdout and "test_accuracy" in text.stdout


@pytest.mark.parametrize("names, says", [
    (["only"], "at least two runs"),
    (["0000000000", "1111111111"], "no run '0000000000'"),
    (["", "x"], "ambiguous"),
])
def test_compare_refuses_unknown_ambiguous_or_single_runs(store, names, says):
    folder, uri, _ = store
    done = run_cli("compare", *names, "--tracking-uri", uri, cwd=folder)
    assert done.returncode == 2 and says in done.stderr, done.stderr
