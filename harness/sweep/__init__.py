"""Optuna sweeps: the only package that imports Optuna.

Search spaces as data (space), what a sweep is and where its Settings are built (settings),
per-trial seeds and the queue-only study (sampling), storages and the set-up lock (storage),
a journal file that killed processes leave neither locked, torn nor with lost trials (journal),
a trial's objective (objective), the study, its set-up and worker loop (study), and what a
study found, as plain data (summary). Imports harness.training and harness.tracking; never claims, reproduce,
report or commands.
"""
