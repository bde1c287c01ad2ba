"""Training: one run from its resolved spec to its recorded result.

The spec (defaults, TOML, `--set`, flags), the model around a variant, the one `train()` that
every command uses, evaluation on a split, checkpoints, the files a run records (artifacts), the
gradient-flow and gate probes, the context-ablation probe and the CPU thread policy.
Imports the foundation leaves, `variants`, `tasks` and `harness.tracking` (behind its Tracker
interface); never Optuna, claims or commands.
"""
