"""Reproducing a claim: its planned grid, tuning studies and lag ladders run through train().

runner: the plan and the pool that runs it (finished runs reused); one_run: one run's spec and
execution; stages: the adaptive stages (tuning studies through harness.sweep, then ladders).
"""
