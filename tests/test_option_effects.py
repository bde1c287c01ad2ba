"""Every option takes effect or is refused, through the CLI: a causal task refuses a backward
direction (run, sweep and its search space, reproduce), train.steps caps a dataset run, a flag
and a --set that disagree are refused, and dropout that cannot act warns in one line."""
from __future__ import annotations

import json
import textwrap

import pytest
from helpers import run_cli
from test_imdb import write_archive

import tasks
from harness.training.spec import build_spec

DATASETS = [n for n in tasks.available() if tasks.get(n).dataset]
CAUSAL = ["imdb_lm"]  # next-word prediction (the refusals below are for it: the case)
SMALL = {"model.hidden_size": 8, "model.embedding_dim": 8, "train.batch_size": 2, "track.probe_points": 1}


@pytest.fixture
def archive(tmp_path, monkeypatch):
    """The tiny IMDB-layout archive, as --set options of a dataset task (caches in tmp_path)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "usercache"))
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    path = tmp_path / "src" / "aclImdb_v1.tar.gz"
    sha = write_archive(path)
    return {"task.source": str(path), "task.data_dir": str(tmp_path / "data"), "task.sha256": sha}


def sets(values: dict) -> list[str]:
    return [f"--set={k}={v}" for k, v in values.items()]


def task_values(name: str, archive: dict) -> dict:
    return {**archive, **{f"task.{k}": v for k, v in tasks.get(name).smoke_options.items()}}


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def test_imdb_lm_declares_itself_causal_and_the_classifier_does_not():
    assert [n for n in tasks.available() if getattr(tasks.get(n), "causal", False)] == CAUSAL


@pytest.mark.parametrize("task", CAUSAL)
def test_run_refuses_a_backward_direction_on_a_causal_task_before_anything_exists(task, archive, tmp_path):
    result = run_cli("run", "--task", task, "--set", "model.bidirectional=true", "--set", "train.epochs=1",
                     *sets({**task_values(task, archive), **SMALL}), "--json", cwd=tmp_path)
    line = one_line(result)
    assert "model.bidirectional" in line and task in line and "predicts" in line, line
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "checkpoints").exists()


def test_a_non_causal_task_keeps_its_backward_direction():
    result = run_cli("config", "--task", "imdb", "--set", "model.bidirectional=true")
    assert result.returncode == 0 and "bidirectional = true" in result.stdout, result.stderr[-2000:]


@pytest.mark.parametrize("task", CAUSAL)
def test_a_search_space_that_tries_a_backward_direction_is_refused_up_front(task, archive, tmp_path):
    (tmp_path / "search.toml").write_text('[search]\n"model.bidirectional" = {type = "categorical", '
                                          'choices = [false, true]}\n')
    result = run_cli("sweep", "--variant", "lstm", "--task", task, "--trials", "2", "--sampler", "grid",
                     "--config", "search.toml", "--set", "train.epochs=1",
                     *sets({**task_values(task, archive), **SMALL}), cwd=tmp_path)
    line = one_line(result)
    assert line.startswith("error: search.model.bidirectional: ") and "predicts" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["search.toml", "src"], "no store, journal or lock"


@pytest.mark.parametrize("task", CAUSAL)
def test_reproduce_refuses_a_claim_that_plans_a_backward_direction_on_a_causal_task(task, archive, tmp_path):
    fixed = {"task.name": task, "model.bidirectional": True, "train.epochs": 1, **task_values(task, archive), **SMALL}
    (tmp_path / "bidir_claim.py").write_text(textwrap.dedent(f"""
        from harness.claims import Claim, Grid
        from harness.claims.registry import register

        @register
        class BidirectionalLm(Claim):
            name = "bidir_lm_test"
            title = statement = sources = protocol = "a backward direction on a causal task"
            cells = ("lstm",)

            def grids(self, budget):
                return (Grid("g", {fixed!r}, {{"model.variant": ("lstm",)}}),)
        """))
    store = tmp_path / "store"
    result = run_cli("reproduce", "bidir_lm_test", "--plugin", "bidir_claim", "--budget", "smoke",
                     "--tracking-uri", f"sqlite:///{store}/mlflow.db", cwd=tmp_path,
                     env={"PYTHONPATH": f"{tmp_path}:{__import__('os').environ.get('PYTHONPATH', '')}"})
    line = one_line(result)
    assert "model.bidirectional" in line and "predicts" in line, line
    assert not store.exists(), "refused before the store was created"


@pytest.mark.parametrize("task", DATASETS)
def test_train_steps_caps_a_dataset_run_and_is_recorded(task, archive, tmp_path):
    from harness.tracking import open_runs

    values = task_values(task, archive)
    per_epoch = tasks.create(task, **{k[len("task."):]: v for k, v in values.items()}).steps_per_epoch(2)
    assert 2 * per_epoch > 3, "two epochs are longer than the cap"
    result = run_cli("run", "--task", task, "--set", "train.steps=3", "--set", "train.epochs=2",
                     *sets({**values, **SMALL}), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["steps"] == 3 and info["outcome"] == "finished"
    runs = open_runs(info["tracking_uri"])
    row = runs.table(task).iloc[0]
    assert row["train.steps"] == 3 and row["train.epochs"] == 2
    assert runs.history([info["run_id"]], "train_loss")["step"].max() == 3, "training stopped at the cap"


def test_a_cap_changes_a_dataset_runs_fingerprint():
    """A capped run is another result than the uncapped one: it is never reused for it."""
    for name in DATASETS:
        uncapped = build_spec({"task": {"name": name}})
        assert uncapped.train.steps == 0 and uncapped.total_steps(7) == 7 * uncapped.train.epochs
        capped = build_spec({"task": {"name": name}, "train": {"steps": 1500}})
        assert capped.fingerprint() != uncapped.fingerprint() and capped.total_steps(1000) == 1500


def test_no_cap_is_for_dataset_tasks_only():
    line = one_line(run_cli("config", "--set", "train.steps=0"))
    assert "train.steps" in line and ">= 1" in line, line


@pytest.mark.parametrize("flag, field, value, other", [
    ("--variant", "model.variant", "lstm", "gru"), ("--task", "task.name", "recall", "adding"),
    ("--seed", "train.seed", "1", "2")])
def test_a_flag_and_a_set_that_disagree_are_refused_and_that_agree_are_fine(flag, field, value, other, tmp_path):
    line = one_line(run_cli("run", flag, value, "--set", f"{field}={other}", "--set", "train.steps=2", cwd=tmp_path))
    assert f"{flag} {value}" in line and f"{field}={other}" in line and "disagree" in line, line
    assert not (tmp_path / "mlflow.db").exists()
    same = run_cli("config", flag, value, "--set", f"{field}={value}", cwd=tmp_path)
    assert same.returncode == 0 and same.stderr == "", same.stderr[-2000:]


def test_dropout_that_cannot_act_warns_in_one_line():
    alone = run_cli("config", "--set", "model.dropout=0.3")
    assert alone.returncode == 0
    lines = alone.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: model.dropout=0.3") and "num_layers" in lines[0], lines
    stacked = run_cli("config", "--set", "model.dropout=0.3", "--set", "model.num_layers=2")
    assert stacked.returncode == 0 and stacked.stderr == "", stacked.stderr[-2000:]
