"""The advisory-lock plan on a real PostgreSQL: one holder per unit, a dead holder's units free."""
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
