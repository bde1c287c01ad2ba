"""Sweeps that were interrupted, killed or left a damaged journal resume right, through the
command line, on real journal files and a real MLflow (SQLite) store: no lock is left
behind, `--trials N` means N, lost trials run again, a torn record is cut in one line,
Ctrl-C is one line and its trial runs again."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import optuna
import pytest
from helpers import ROOT, run_cli
from mlflow import MlflowClient
from optuna.trial import TrialState

from harness.sweep.storage import open_storage

TINY = ["--set", "model.hidden_size=8", "--set", "task.length=5", "--set", "train.batch_size=16",
        "--set", "task.val_size=256", "--set", "task.test_size=256", "--set", "track.probe_points=1"]
OFF = ["--set", "track.enabled=false"]
STUDY = "lstm-recall-L5"


def retry_of(trial) -> int | None:
    """The number of the failed trial this one retries (Optuna's declaration), else None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def _study(tmp_path):
    return optuna.load_study(study_name=STUDY, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal"))))


def _states(trials) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def _start(args, cwd, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kwargs)


def _wait_for_running(tmp_path, proc, count=1, deadline_s=300):
    """Wait until `count` trials are RUNNING with an MLflow run or a reported step recorded."""
    deadline = time.time() + deadline_s
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            running = _study(tmp_path).get_trials(states=(TrialState.RUNNING,))
        except KeyError:
            continue
        if len([t for t in running if t.intermediate_values]) >= count:
            return
    raise AssertionError(f"no {count} running trials; exit {proc.poll()}")


def _lines(stderr: str) -> list[str]:
    """stderr without MLflow's own INFO lines about creating its tables."""
    return [line for line in stderr.splitlines() if line.strip() and " INFO mlflow." not in line]


def test_a_set_up_killed_while_queueing_leaves_no_lock_and_trials_means_trials(tmp_path):
    """A set-up SIGKILLed while it queues 100,000 trials; the next `--trials 3` runs exactly 3 and
    cancels the rest (it used to run every queued trial, after a 30 s stall on a stale lock)."""
    journal = tmp_path / "optuna.journal"
    setup = _start(["sweep", "--variant", "lstm", "--trials", "100000", "--set", "train.steps=10", *TINY, *OFF],
                   tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and setup.poll() is None:
        time.sleep(0.1)
        if journal.exists() and journal.read_bytes().count(b"\n") >= 200:
            break
    setup.send_signal(signal.SIGKILL)
    setup.wait(timeout=60)
    assert setup.returncode == -signal.SIGKILL, setup.stderr.read()[-2000:]
    queued = _states(_study(tmp_path).trials).get("WAITING", 0)
    assert queued >= 150

    result = run_cli("sweep", "--variant", "lstm", "--trials", "3", "--set", "train.steps=10", *TINY, *OFF,
                     cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(line.startswith(("note: ", "study ")) for line in _lines(result.stderr)), result.stderr[-3000:]
    trials = _study(tmp_path).trials
    states = _states(trials)
    assert states.get("COMPLETE", 0) + states.get("PRUNED", 0) == 3 and "WAITING" not in states, states
    cancelled = [t for t in trials if t.state == TrialState.FAIL]
    assert len(cancelled) == queued - 3
    assert all(t.user_attrs["reason"] == "cancelled: beyond --trials 3" for t in cancelled)
    assert f"{queued - 3} cancelled trials not listed" in result.stdout


def test_a_writer_killed_holding_the_journal_lock_does_not_stall_the_next_sweep(tmp_path):
    """The journal's write lock dies with its holder: the next sweep writes at once, with no
    "taking longer than 10 seconds to acquire the lock" warnings (Optuna's symlink lock, left
    behind by a killed writer, was forcibly released only after its 30 s grace period)."""
    first = run_cli("sweep", "--variant", "lstm", "--trials", "1", "--set", "train.steps=10", *TINY, *OFF,
                    cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom harness.sweep.storage import open_storage\n"
         "storage = open_storage(sys.argv[1])\nstorage._backend._lock.acquire()\nprint('held', flush=True)\n"
         "time.sleep(600)\n", str(tmp_path / "optuna.journal")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held", holder.stderr.read()[-2000:]
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)

    result = run_cli("sweep", "--variant", "lstm", "--trials", "2", "--set", "train.steps=10", *TINY, *OFF,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _lines(result.stderr) == [f"study {STUDY}: 1 trial queued (target 2) in {tmp_path / 'optuna.journal'}"]


def test_a_sigkilled_sweep_is_resumed_and_its_lost_trial_run_again(tmp_path):
    """SIGKILL in a trial, then the same command: the lost trial is failed, its MLflow run
    marked FAILED, and it runs again with its parameters (it used to stay RUNNING, the sweep
    exiting 0 with 2 of 3 trials done and without a word about --fail-running)."""
    args = ["sweep", "--variant", "lstm", "--trials", "3", "--pruner", "none", "--set", "train.eval_every=50", *TINY]
    victim = _start([*args, "--set", "train.steps=3000"], tmp_path)
    _wait_for_running(tmp_path, victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    lost = _study(tmp_path).get_trials(states=(TrialState.RUNNING,))
    assert len(lost) == 1 and "mlflow_run_id" in lost[0].user_attrs

    resumed = run_cli(*args, "--set", "train.steps=100", cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "note: 1 lost trial (left RUNNING by a process that died) failed and queued again" in resumed.stderr
    trials = _study(tmp_path).trials
    assert _states(trials) == {"COMPLETE": 3, "FAIL": 1}, _states(trials)
    failed = trials[lost[0].number]
    assert failed.state == TrialState.FAIL
    retries = [t for t in trials if retry_of(t) == failed.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and retries[0].params == failed.params
    run = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(lost[0].user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED" and "process died" in run.data.tags["failure_reason"]


def test_a_torn_last_record_is_cut_with_one_line_and_the_study_goes_on(tmp_path):
    """A crash mid-write leaves the journal's last line incomplete: it is cut (the bytes kept in
    a backup), with one line, and every complete record before it is kept (a sweep on it used to
    end in a 42-line traceback and `--report` to call it "not an Optuna journal file")."""
    first = run_cli("sweep", "--variant", "lstm", "--trials", "2", "--set", "train.steps=10", *TINY, *OFF,
                    cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    journal = tmp_path / "optuna.journal"
    whole = journal.read_bytes()
    complete = whole[:whole.rindex(b"\n", 0, len(whole) - 1) + 1]  # every record but the last
    journal.write_bytes(whole[:-5])  # the last record torn: its final bytes and newline never written

    report = run_cli("sweep", "--report", STUDY, cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    backup = tmp_path / "optuna.journal.torn-1"
    assert _lines(report.stderr) == [
        f"note: {journal}: its last record was torn (a crash while writing it); cut its {len(whole) - 5 - len(complete)} "
        f"bytes, kept in {backup}; the records before it are intact"]
    assert journal.read_bytes() == complete and backup.read_bytes() == whole[len(complete):-5]

    more = run_cli("sweep", "--variant", "lstm", "--trials", "3", "--set", "train.steps=10", *TINY, *OFF,
                   cwd=tmp_path)
    assert more.returncode == 0, more.stderr[-3000:]
    states = _states(_study(tmp_path).trials)
    assert states.get("COMPLETE", 0) + states.get("PRUNED", 0) == 3 and "RUNNING" not in states, states


def test_a_writer_cuts_a_tail_torn_by_another_process(tmp_path):
    """A process killed while appending tears the journal under a live sweep: the next append
    cuts the torn bytes first instead of gluing its record to them (which left a line that no
    reader could parse, and lost the record written after it)."""
    path = tmp_path / "optuna.journal"
    storage = open_storage(str(path))
    study = optuna.create_study(storage=storage, study_name="s")
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"op_code":')  # another writer's record, torn
    study.set_user_attr("after", 1)
    assert (tmp_path / "optuna.journal.torn-1").read_bytes() == b'{"op_code":'
    reread = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(path))))
    assert reread.user_attrs == {"after": 1}


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_in_a_sweep_is_one_line_and_its_trial_runs_again(tmp_path, workers):
    """Ctrl-C (SIGINT to the terminal's process group) in a trial: one line, exit 130; each trial
    in flight is FAIL, its MLflow run KILLED, and it is queued again with its parameters, so the
    next run of the command completes the study (Ctrl-C used to print a 14-line traceback)."""
    args = ["sweep", "--variant", "lstm", "--trials", "3", "--pruner", "none", "--workers", str(workers),
            "--set", "train.eval_every=50", *TINY]
    sweep = _start([*args, "--set", "train.steps=100000"], tmp_path, start_new_session=True)
    _wait_for_running(tmp_path, sweep, count=workers)
    os.killpg(sweep.pid, signal.SIGINT)
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 130, err[-3000:]
    lines = _lines(err)
    assert "Traceback" not in err and lines[-1].startswith("interrupted: ") and lines[-1].endswith(
        "run the same command to continue the study"), err[-3000:]
    assert sum("interrupted" in line for line in lines) == 1, lines
    trials = _study(tmp_path).trials
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == workers and "RUNNING" not in _states(trials), _states(trials)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for trial in failed:
        assert client.get_run(trial.user_attrs["mlflow_run_id"]).info.status == "KILLED"
        retry = [t for t in trials if retry_of(t) == trial.number]
        assert len(retry) == 1 and retry[0].state == TrialState.WAITING and retry[0].params == trial.params
    if workers == 1:
        assert lines[-1] == f"interrupted: trial {failed[0].number} was failed and queued again; " \
                            "run the same command to continue the study"

    again = run_cli(*args, "--set", "train.steps=20", "--json", cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    counts = json.loads(again.stdout.strip().splitlines()[-1])["counts"]
    assert counts == {"COMPLETE": 3, "FAIL": workers}, counts
