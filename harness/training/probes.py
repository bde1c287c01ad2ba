"""Instrumentation: gradient flow through time and gate statistics.

Gradient flow (Pascanu, Mikolov & Bengio 2013): for one batch run through the explicit step
path, ‖∂L/∂h_t‖ for every step t of the top layer — the total derivative through the
recurrence, not only the direct path to the loss — and ‖∂L/∂x_t‖ for the layer's inputs.
Norms are per sequence (the loss is summed over the batch, so each sequence's gradient is
its own) and then averaged over the batch. Distance k counts steps back from the last one.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor

from variants import Trace


@dataclasses.dataclass
class GradientProfile:
    grad_h: np.ndarray  # (T,) mean ‖∂L/∂h_t‖, index = distance k from the last step
    grad_x: np.ndarray  # (T,) mean ‖∂L/∂x_t‖

    def horizon(self, threshold: float) -> tuple[int, bool]:
        """Largest k with grad_h[k] >= threshold * grad_h[0]; (k, censored: never fell below)."""
        ref = self.grad_h[0]
        above = np.nonzero(self.grad_h >= threshold * ref)[0] if ref > 0 else np.array([0])
        k = int(above.max()) if above.size else 0
        return k, bool(k == len(self.grad_h) - 1 and ref > 0)

    def decay_per_step(self) -> float:
        """exp of the slope of a least-squares fit of log ‖∂L/∂h‖ against k (1 = no decay)."""
        k = np.arange(len(self.grad_h))
        keep = self.grad_h > 0
        if keep.sum() < 2:
            return float("nan")
        slope = np.polyfit(k[keep], np.log(self.grad_h[keep]), 1)[0]
        return float(np.exp(slope))

    def summary(self, threshold: float) -> dict[str, float]:
        k, censored = self.horizon(threshold)
        return {"gradient_horizon": float(k), "gradient_horizon_censored": float(censored),
                "gradient_decay": self.decay_per_step()}


def top_layer_gradients(traces: list[Trace], directions: int) -> np.ndarray:
    """Per-step ‖∂L/∂h_t‖ over both directions of the top layer, batch-averaged: (T,).
    Padded steps of shorter sequences (no gradient) count as 0."""
    top = traces[-directions:]
    squares = sum(trace.hidden_grads().float().pow(2).sum(-1) for trace in top)  # (T, B)
    return squares.sqrt().mean(1).cpu().numpy()


def gradient_profile(model, task, batch) -> GradientProfile:
    """Run `batch` through the explicit path of a SequenceModel and measure gradient flow."""
    was_training = model.training
    model.train()  # the gradients training actually sees (phased leak on, etc.)
    try:
        x = model.encode(batch).detach().requires_grad_()  # (B, T, input)
        logits, state, traces = model.trace(x, batch, retain_grad=True)
        loss = task.loss(logits, batch) * len(batch)  # summed: each sequence's own gradient
        reg = model.regularizer(state)
        if reg is not None:
            loss = loss + reg * len(batch)
        loss.backward()
        grad_h = top_layer_gradients(traces, model.rnn.directions)
        grad_x = x.grad.detach().float().norm(dim=-1).mean(0).cpu().numpy()  # (T,)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return GradientProfile(grad_h=grad_h[::-1].copy(), grad_x=grad_x[::-1].copy())


def gate_statistics(traces: list[Trace]) -> dict[str, float]:
    """Mean of every recorded aux tensor, and the saturated fraction (< 0.05 or > 0.95) of gates,
    over the real steps (padding of shorter sequences left out)."""
    collected: dict[str, list[Tensor]] = {}
    for trace in traces:
        for key, value in trace.stacked_aux().items():  # (T, B, ·)
            if trace.valid is not None:
                value = value[trace.valid.to(value.device)]  # (N, ·) real steps only
            collected.setdefault(key, []).append(value.float().flatten())
    stats = {}
    for key, values in sorted(collected.items()):
        v = torch.cat(values)
        stats[f"{key}_mean"] = v.mean().item()
        if key.startswith("gate_"):
            stats[f"{key}_saturated"] = ((v < 0.05) | (v > 0.95)).float().mean().item()
    return stats


def profile_rows(step: int, profile: GradientProfile) -> list[dict]:
    return [{"step": step, "distance": k, "grad_h_norm": float(h), "grad_x_norm": float(x)}
            for k, (h, x) in enumerate(zip(profile.grad_h, profile.grad_x))]
