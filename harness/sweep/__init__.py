"""Optuna sweeps: the only package that imports Optuna.

Search spaces as data (space), per-trial seeds and the queue-only study (sampling), storages and
the set-up lock (storage), and the study, its objective and the worker loop (study).
Imports harness.training and harness.tracking; never claims, reproduce, report or commands.
"""
