"""Optuna sweeps with real storages (journal file, PostgreSQL), real MLflow stores and real
worker processes: counts, nesting, resume, crashed workers, divergence, the dashboard."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import warnings

import optuna
import psutil
from helpers import at_once, free_port, new_database, run_cli
from test_sweep_connections import WORKER_MOST, Census
from mlflow import MlflowClient
from optuna.trial import TrialState
from sqlalchemy.pool import NullPool

TINY = ["--set", "model.hidden_size=8", "--set", "task.length=5", "--set", "train.batch_size=16",
        "--set", "task.val_size=256", "--set", "task.test_size=256", "--set", "track.probe_points=1"]
OFF = ["--set", "track.enabled=false"]  # for tests about the study alone: no MLflow, less CPU


def _sweep(*args, cwd, timeout=600):
    result = run_cli("sweep", *args, "--json", cwd=cwd, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def _client(uri):
    """An MlflowClient whose store's connections are closed afterwards (MLflow keeps one engine
    per URI and process, with a pool of up to 15 connections to a PostgreSQL server)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    try:
        yield MlflowClient(uri)
    finally:
        engine = SqlAlchemyStore._engine_map.pop(uri, None)
        if engine is not None:
            engine.dispose()


@contextlib.contextmanager
def _pg_storage(url):
    """One Optuna storage on `url` for a whole test, without a pool, its engine disposed after."""
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"poolclass": NullPool})
    try:
        yield storage
    finally:
        storage.engine.dispose()


def _children(uri, parent):
    with _client(uri) as client:
        experiments = [e.experiment_id for e in client.search_experiments()]
        return client.search_runs(experiments, f"tags.mlflow.parentRunId = '{parent}'", max_results=1000)


def test_journal_sweep_with_mlflow_sqlite_then_resume(tmp_path):
    out = _sweep("--variant", "lstm", "--trials", "4", "--set", "train.steps=40", *TINY, cwd=tmp_path)
    assert out["counts"]["COMPLETE"] + out["counts"].get("PRUNED", 0) == 4
    study = optuna.load_study(study_name="lstm-recall-L5",
                              storage=optuna.storages.JournalStorage(
                                  optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal"))))
    assert len(study.trials) == 4
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    parent = client.get_run(out["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert {"study", "sampler", "pruner", "search_space"} <= set(parent.data.params)
    assert json.loads(parent.data.params["search_space"])["train.lr"]["log"] is True
    children = _children(uri, out["parent_run_id"])
    assert len(children) == 4
    by_trial = {int(r.data.tags["optuna.trial"]): r for r in children}
    for trial in study.trials:  # the trial records its child run, the child its trial state
        child = by_trial[trial.number]
        assert trial.user_attrs["mlflow_run_id"] == child.info.run_id
        assert child.data.tags["trial_state"] == trial.state.name
    artifacts = {a.path for a in client.list_artifacts(out["parent_run_id"])}
    assert {"trials.csv", "optimization_history.png", "parallel_coordinate.png"} <= artifacts
    assert out["best"] and out["best"][0]["test"], "best trial with its recorded test metrics"
    assert len(out["best"]) == 1, "one objective: one best trial, ties counted rather than listed"

    more = _sweep("--variant", "lstm", "--trials", "6", "--set", "train.steps=40", *TINY, cwd=tmp_path)
    assert sum(more["counts"].get(s, 0) for s in ("COMPLETE", "PRUNED")) == 6
    assert more["parent_run_id"] == out["parent_run_id"]
    assert len(_children(uri, out["parent_run_id"])) == 6
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == len(params), "a resumed session must not replay earlier draws"

    report = run_cli("sweep", "--report", "lstm-recall-L5", cwd=tmp_path)
    assert report.returncode == 0 and "best trial" in report.stdout


def test_a_diverging_trial_is_stopped_with_its_reason_and_the_sweep_goes_on(tmp_path):
    (tmp_path / "search.toml").write_text(
        '[search]\n"train.lr" = {type = "categorical", choices = [1e30, 0.001]}\n'
        '"model.num_layers" = "off"\n"model.dropout" = "off"\n"cell.forget_bias" = "off"\n'
        '"train.clip" = {type = "categorical", choices = [0.0]}\n'
        '"model.hidden_size" = {type = "categorical", choices = [8]}\n')
    out = _sweep("--variant", "simple_rnn", "--task", "adding", "--trials", "3", "--sampler", "grid",
                 "--pruner", "none", "--config", "search.toml", "--set", "train.steps=20",
                 "--set", "train.log_every=1", "--set", "task.length=8", "--set", "task.val_size=256",
                 "--set", "task.test_size=256", cwd=tmp_path)
    study = optuna.load_study(study_name="simple_rnn-adding-L8", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal"))))
    diverged = [t for t in study.trials if t.params["train.lr"] == 1e30]
    healthy = [t for t in study.trials if t.params["train.lr"] == 0.001]
    assert len(diverged) == 1 and len(healthy) == 1 and len(study.trials) == 2  # the grid has 2 points
    assert all(t.state == TrialState.PRUNED and "non-finite" in t.user_attrs["reason"] for t in diverged)
    assert all(t.state == TrialState.COMPLETE for t in healthy)
    assert out["counts"]["COMPLETE"] == len(healthy)


def test_a_study_refuses_a_different_setup(tmp_path):
    _sweep("--variant", "gru", "--trials", "1", "--study", "mine", "--set", "train.steps=10", *TINY, *OFF,
           cwd=tmp_path)
    result = run_cli("sweep", "--variant", "lstm", "--trials", "2", "--study", "mine", *TINY, *OFF, cwd=tmp_path)
    assert result.returncode == 2 and "study 'mine' tunes variant 'gru', not 'lstm'" in result.stderr


def test_multi_objective_metric_against_parameters(tmp_path):
    out = _sweep("--variant", "gru", "--trials", "3", "--objectives", "metric,params",
                 "--set", "train.steps=10", *TINY, *OFF, cwd=tmp_path)
    assert out["directions"] == ["maximize", "minimize"]
    assert all(len(b["values"]) == 2 for b in out["best"])


def test_optuna_dashboard_serves_the_study(tmp_path):
    _sweep("--variant", "gru", "--trials", "2", "--set", "train.steps=10", *TINY, *OFF, cwd=tmp_path)
    port = free_port()
    dashboard = os.path.join(os.path.dirname(sys.executable), "optuna-dashboard")
    proc = subprocess.Popen([dashboard, str(tmp_path / "optuna.journal"),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline, studies = time.time() + 60, None
        while time.time() < deadline and studies is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    studies = json.loads(r.read())["study_summaries"]
            except OSError:
                time.sleep(0.5)
        assert studies is not None, proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no answer"
        assert [s["study_name"] for s in studies] == ["gru-recall-L5"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _journal_study(path, name="lstm-recall-L5"):
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(path))))


def retry_of(trial) -> int | None:
    """The number of the failed trial this one retries (Optuna's declaration), else None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def _distinct_except_retries(trials):
    """Every fresh trial's parameter set is new; a declared retry repeats its original's exactly."""
    by_number = {t.number: t for t in trials}
    fresh = [tuple(sorted(t.params.items())) for t in trials if retry_of(t) is None]
    assert len(set(fresh)) == len(fresh), f"{len(fresh) - len(set(fresh))} repeated parameter sets"
    for t in trials:
        if retry_of(t) is not None:
            assert t.params == by_number[retry_of(t)].params


def test_two_sweeps_on_one_journal_one_killed_the_other_runs_its_lost_trial_again(tmp_path):
    """The scale-out recipe on one machine: the same command twice at once on one journal file
    (same seed, same worker index, same trial counts), one of them SIGKILLed in a trial. The
    survivor, once it has nothing else to do and no live process runs a trial of the journal,
    fails the lost trial and runs it again with its parameters; no draw is repeated."""
    args = ["sweep", "--variant", "lstm", "--trials", "8", "--seed", "11", "--pruner", "none",
            "--set", "train.steps=300", "--set", "train.eval_every=50", *TINY, *OFF]
    procs = [subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    victim, deadline = procs[0], time.time() + 300
    while time.time() < deadline and victim.poll() is None:
        time.sleep(0.2)
        try:
            trials = _journal_study(tmp_path / "optuna.journal").get_trials(states=(TrialState.RUNNING,))
        except KeyError:
            continue
        if any(t.user_attrs.get("worker", "").endswith(f":{victim.pid}") and t.params for t in trials):
            victim.send_signal(signal.SIGKILL)
            break
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL, "the victim was killed inside a trial"
    assert procs[1].wait(timeout=600) == 0, procs[1].stderr.read()[-3000:]
    trials = _journal_study(tmp_path / "optuna.journal").trials
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 8 and states.count(TrialState.FAIL) == 1 and len(trials) == 9
    lost = states.index(TrialState.FAIL)
    assert [retry_of(t) for t in trials if retry_of(t) is not None] == [lost]
    _distinct_except_retries(trials)

    again = run_cli(*args, "--fail-running", cwd=tmp_path, timeout=600)  # a complete study: nothing to do
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 trials queued" in again.stderr
    assert len(_journal_study(tmp_path / "optuna.journal").trials) == 9


def test_a_seeded_single_process_sweep_repeats_its_parameter_sequence(tmp_path):
    """--seed and one process: the same command on fresh storages draws the same parameters
    (5 random start-up trials, then TPE); without --seed each study gets its own seed."""
    runs = {}
    for name, seed in (("a", ["--seed", "3"]), ("b", ["--seed", "3"]), ("c", [])):
        (tmp_path / name).mkdir()
        _sweep("--variant", "lstm", "--trials", "7", *seed, "--set", "train.steps=10", *TINY, *OFF,
               cwd=tmp_path / name)
        study = _journal_study(tmp_path / name / "optuna.journal")
        runs[name] = ([t.params for t in study.trials], study.user_attrs["sampler_seed"])
    assert runs["a"] == runs["b"] and runs["a"][1] == 3
    assert len(runs["a"][0]) == 7 and any(p.get("model.num_layers") == 2 for p in runs["a"][0])
    assert runs["c"][0] != runs["a"][0]
    other = run_cli("sweep", "--variant", "lstm", "--trials", "8", "--seed", "4", *TINY, *OFF, cwd=tmp_path / "a")
    assert other.returncode == 2 and "samples with seed 3, not 4" in other.stderr


def test_a_grid_over_a_conditional_space_tries_each_active_combination_once(tmp_path):
    (tmp_path / "search.toml").write_text(
        '[search]\n"train.lr" = {type = "categorical", choices = [0.003]}\n"train.clip" = "off"\n'
        '"cell.forget_bias" = "off"\n"model.hidden_size" = {type = "categorical", choices = [8]}\n'
        '"model.dropout" = {type = "float", low = 0, high = 0.5, grid = [0.0, 0.25], '
        'when = "model.num_layers > 1"}\n')
    out = _sweep("--variant", "gru", "--trials", "5", "--sampler", "grid", "--config", "search.toml",
                 "--set", "train.steps=10", *TINY, *OFF, cwd=tmp_path)
    assert out["counts"]["COMPLETE"] + out["counts"].get("PRUNED", 0) == 3
    study = _journal_study(tmp_path / "optuna.journal", "gru-recall-L5")
    points = sorted((t.params["model.num_layers"], t.params.get("model.dropout")) for t in study.trials)
    assert points == [(1, None), (2, 0.0), (2, 0.25)]


def test_three_workers_share_a_postgresql_study(postgres, tmp_path):
    """Three separate `sweep` processes (as on three machines) on one PostgreSQL study."""
    storage, uri = f"{postgres}/optuna", f"{postgres}/mlflow"
    args = ["sweep", "--variant", "gru", "--trials", "12", "--study", "pg-three", "--storage", storage,
            "--tracking-uri", uri, "--experiment", "pg-three", "--pruner", "none",
            "--set", "train.steps=20", *TINY, "--json"]
    procs = [subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    with _pg_storage(storage) as opened:
        study = optuna.load_study(study_name="pg-three", storage=opened)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == 12 and sorted(numbers) == list(range(12)), "exactly 12, no duplicates"
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    _distinct_except_retries(study.trials)  # three processes, one seed, the same counts: no shared draw
    parents = {json.loads(o[0].strip().splitlines()[-1])["parent_run_id"] for o in outs}
    assert len(parents) == 1, "every process attached to the same parent run"
    children = _children(uri, parents.pop())
    assert sorted(int(r.data.tags["optuna.trial"]) for r in children) == list(range(12))
    assert {r.info.run_id for r in children} == {t.user_attrs["mlflow_run_id"] for t in study.trials}


def test_workers_opening_a_new_postgresql_storage_at_once_do_not_collide(postgres):
    """Optuna creates its tables on first use; three workers doing that at the same instant on a
    new database used to fail with a duplicate-key IntegrityError (all but one of them)."""
    url = new_database(postgres, "fresh_optuna")
    results = at_once("import optuna\nfrom harness.sweep.storage import open_storage",
                      "optuna.create_study(storage=open_storage(sys.argv[1]), study_name='s', load_if_exists=True)", url)
    assert [code for code, _ in results] == [0] * 3, [err[-1500:] for _, err in results]
    with _pg_storage(url) as opened:
        assert [s.study_name for s in optuna.get_all_study_summaries(opened)] == ["s"]


def test_a_sigkilled_worker_trial_fails_and_is_retried(postgres, tmp_path):
    storage, uri = f"{postgres}/optuna", f"{postgres}/mlflow"
    args = ["sweep", "--variant", "lstm", "--trials", "6", "--study", "pg-kill", "--storage", storage,
            "--tracking-uri", uri, "--experiment", "pg-kill", "--pruner", "none", "--workers", "3",
            "--heartbeat", "1", "--set", "train.steps=1000", "--set", "train.eval_every=50", *TINY, "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.time() + 300
    # one engine for the whole poll (one per poll ran a server out); the workers' connections counted
    with _pg_storage(storage) as opened, Census(int(postgres.rsplit(":", 1)[1]), [proc]) as census:
        while victim is None and time.time() < deadline:
            time.sleep(0.2)
            try:
                study = optuna.load_study(study_name="pg-kill", storage=opened)
            except KeyError:
                continue
            # a trial in the first half of its training: its run exists and it is far from finishing, so the
            # kill lands mid-training whatever the machine's load (killing 'a second later' once hit the gap
            # between two trials, where no MLflow run exists yet)
            running = [t for t in study.get_trials(states=(TrialState.RUNNING,))
                       if "mlflow_run_id" in t.user_attrs and t.intermediate_values
                       and max(t.intermediate_values) <= 400]
            if running:  # the worker process that runs this trial, by the pid the trial recorded
                victim = psutil.Process(int(running[0].user_attrs["worker"].rsplit(":", 1)[1]))
        assert victim is not None, "no worker was running a trial"
        victim.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        study = optuna.load_study(study_name="pg-kill", storage=opened)
    peaks = census.worker_peaks()  # one Optuna connection each, MLflow's per call (tests/test_sweep_connections.py)
    assert len(peaks) >= 3 and max(peaks) <= WORKER_MOST, peaks
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 6
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1
    retried = [t for t in study.trials if retry_of(t) == failed[0].number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == failed[0].params
    _distinct_except_retries(study.trials)
    with _client(uri) as client:
        lost = client.get_run(failed[0].user_attrs["mlflow_run_id"])
    assert lost.info.status == "FAILED" and "stale heartbeat" in lost.data.tags["failure_reason"]


def test_every_outcome_ends_its_trial_in_one_optuna_state():
    from harness.sweep.objective import TRIAL_STATE
    from harness.tracking import Outcome

    assert set(TRIAL_STATE) == set(Outcome), "a new Outcome needs its trial state (harness/sweep/objective.py)"
    assert TRIAL_STATE[Outcome.FINISHED] == TrialState.COMPLETE and TRIAL_STATE[Outcome.KILLED] == TrialState.FAIL
