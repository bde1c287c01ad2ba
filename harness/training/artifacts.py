"""What a run records besides metrics: its resolved config, the model, the gradient-flow
profile (CSV + figure), and where its checkpoints live."""
from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import torch

from harness.training.checkpoint import FILE, checkpoint_root
from harness.config import flatten
from harness.training.model import trainable_parameters
from harness.tracking import Tracker


def checkpoint_path(spec, run_id: str | None, store_dir: Path | None) -> Path:
    """Where the run's checkpoint goes: track.checkpoint_dir, else beside the store in
    `store_dir`, else the user cache; one folder per run."""
    root = checkpoint_root(spec.track.checkpoint_dir, store_dir)
    return root / (run_id or f"untracked-{uuid.uuid4().hex[:12]}") / FILE


def log_start(tracker: Tracker, spec, model) -> None:
    params = {k: v for k, v in flatten("", spec.to_dict()).items() if not k.startswith("track.")}
    params["trainable_params"] = trainable_parameters(model)
    tracker.log_params(params)
    tracker.log_text(spec.to_toml(), "config.toml")


def log_end(tracker: Tracker, spec, trainer) -> None:
    track = spec.track
    with tempfile.TemporaryDirectory() as tmp:
        model_file = Path(tmp) / "model_state_dict.pt"
        torch.save(trainer.model.state_dict(), model_file)
        tracker.log_artifact(model_file)
        if trainer.probe_rows:
            import pandas as pd

            csv = Path(tmp) / "gradient_flow.csv"
            pd.DataFrame(trainer.probe_rows).to_csv(csv, index=False)
            tracker.log_artifact(csv)
            if track.probe_figure:
                from harness.analysis import plotting  # matplotlib: only for a run that draws its figure

                title = f"Gradient flow through time: {spec.variant} on {spec.task_name} (length {spec.task.length})"
                figure = plotting.gradient_flow(trainer.probe_rows, title, track.probe_threshold)
                tracker.log_figure(figure, "gradient_flow.png")
                plotting.plt.close(figure)
    if trainer.context_curve is not None:
        tracker.log_text(trainer.context_curve.to_csv(index=False), "context_curve.csv")
    if track.log_model:
        tracker.log_model(trainer.model)
