"""The advisory-lock plan on a real PostgreSQL: one holder per unit, a dead holder's units free,
and `reproduce` processes on one PostgreSQL store sharing a claim's plan (issue: scale-out)."""
from __future__ import annotations

import subprocess
import sys
import time

from helpers import new_database

from harness.reproduce.shared import LocalPlan, SharedPlan, lock_key, open_plan


def test_a_unit_has_one_holder_until_given_back(postgres):
    url = new_database(postgres, "plan_one")
    a, b = SharedPlan(url), SharedPlan(url)
    try:
        assert a.take("claim-x/abc") and a.take("claim-x/abc")  # taking again: still ours
        assert not b.take("claim-x/abc") and b.take("claim-x/def")
        a.give_back("claim-x/abc")
        assert b.take("claim-x/abc") and not a.take("claim-x/abc")
    finally:
        a.close()
        b.close()


def test_a_killed_holder_loses_its_units(postgres):
    url = new_database(postgres, "plan_two")
    program = ("import sys, os\nfrom harness.reproduce.shared import SharedPlan\n"
               "plan = SharedPlan(sys.argv[1])\nassert plan.take('u')\nprint('held', flush=True)\n"
               "sys.stdin.readline()\n")
    holder = subprocess.Popen([sys.executable, "-c", program, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    plan = SharedPlan(url)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not plan.take("u")
        holder.kill()  # SIGKILL: no clean-up runs in the holder
        holder.wait(timeout=30)
        for _ in range(100):  # the server notices the closed socket at once; allow it a moment
            if plan.take("u"):
                break
            time.sleep(0.1)
        assert "u" in plan._held
    finally:
        plan.close()
        holder.kill()


def test_without_postgresql_the_plan_is_local():
    assert isinstance(open_plan(None), LocalPlan) and not open_plan("/tmp/x.journal").shared
    assert lock_key("a") != lock_key("b") and -2 ** 63 <= lock_key("a") < 2 ** 63


def test_reproduce_processes_share_one_plan_and_a_sigkilled_ones_work_is_done_by_the_others(postgres, tmp_path):
    """Three `reproduce horizon --budget smoke` processes on one PostgreSQL store, each in its
    own folder (as on three machines: its own checkpoints and tuning journal). The first is
    SIGKILLed while its first ladder run is in flight; the other two, started together, finish
    the claim between them: every ladder run and every tuning choice has exactly one result in
    the store, the killed run among them, and a status afterwards has nothing left to run."""
    import collections
    import json
    import os
    import signal

    from helpers import run_cli

    from harness.tracking import Outcome, open_runs

    url = new_database(postgres, "shared_claim")
    command = [sys.executable, "-m", "harness", "reproduce", "horizon", "--budget", "smoke", "--tracking-uri", url]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    folders = [tmp_path / name for name in ("killed", "a", "b")]
    for folder in folders:
        folder.mkdir()

    def ladder_runs():
        try:
            records = open_runs(url).records("claim-horizon", {"claim_stage": "ladder"})
        except Exception:  # the experiment is not created yet
            return []
        return records

    first = subprocess.Popen(command, cwd=folders[0], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not any(r.outcome == Outcome.RUNNING for r in ladder_runs()) and time.monotonic() < deadline:
        assert first.poll() is None, "the first process ended before it started a ladder run"
        time.sleep(0.2)
    in_flight = next(r for r in ladder_runs() if r.outcome == Outcome.RUNNING)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    others = [subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True) for folder in folders[1:]]
    outputs = [proc.communicate(timeout=900)[0] for proc in others]
    assert [proc.returncode for proc in others] == [0, 0], "\n".join(o[-2000:] for o in outputs)

    records = open_runs(url).records("claim-horizon")
    results = collections.Counter(r.tags["fingerprint"] for r in records
                                  if r.tags.get("claim_stage") == "ladder" and r.outcome.is_result)
    assert results and set(results.values()) == {1}, "a ladder run was run twice"
    choices = collections.Counter(r.tags["fingerprint"] for r in records
                                  if r.tags.get("claim_stage") == "tuning" and "optuna.trial" not in r.tags
                                  and r.outcome == Outcome.FINISHED)
    assert len(choices) == 9 and set(choices.values()) == {1}, "one tuning choice per (cell, initialisation)"
    assert results[in_flight.tags["fingerprint"]] == 1, "the killed process's run was completed by another"
    killed = next(r for r in records if r.run_id == in_flight.run_id)
    assert killed.outcome != Outcome.RUNNING, "the killed process's worker ended its run (killed, or it finished)"
    status = run_cli("reproduce", "horizon", "--budget", "smoke", "--tracking-uri", url, "--status", "--json",
                     cwd=tmp_path)
    parts = json.loads(status.stdout.strip().splitlines()[-1])["parts"]
    assert all(p["missing"] == 0 and p["next"] == [] for p in parts), parts
