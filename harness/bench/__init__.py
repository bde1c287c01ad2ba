"""Benchmarks: speed and memory of every variant and path as ratios to torch.nn (speed), and the
fixed cost of a tracked run (overhead). Targets live here, never in timed unit tests.
"""
