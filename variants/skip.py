"""The Skip RNN state-update gate (Campos et al. 2018, "Skip RNN: Learning to Skip State
Updates in Recurrent Neural Networks", ICLR), shared by `skip_lstm` and `skip_gru`.

Wrapped around a dense cell S with state s (h, or (h, c)):

    u_t      = round(ũ_t)                      binary; straight-through gradient (∂u/∂ũ := 1)
    s_t      = u_t · S(s_{t-1}, x_t) + (1 - u_t) · s_{t-1}      (state copied when u_t = 0)
    Δũ_t     = σ(W_p s_t + b_p)
    ũ_{t+1}  = u_t · Δũ_t + (1 - u_t) · (ũ_t + min(Δũ_t, 1 - ũ_t))
    ũ_1 = 1,  b_p initialised to 1,  budget loss  λ · Σ_t u_t  (mean over the batch)

As the authors' code, W_p reads the last dense state component (c for the LSTM, h for the
GRU). The state carries ũ and the running count Σ_t u_t per sequence, so a final state tells
how many updates each sequence used and passing it back in continues the sequence (to float
rounding: tests/test_variant_contract.py).

Paths: `explicit` is the reference above, computing the candidate at every step and masking
it. `fast` (skip_fast.py, skip_grad.py) computes only the updates — about T × (update
fraction) iterations — with the reference's update pattern (update counts equal exactly), and
outputs, final states and straight-through gradients (all terms included) within the cell's
stated tolerance.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.config import option
from variants import skip_fast
from variants.base import State
from variants.init import GateOptions

# `auto` takes the fast path from this many steps on. Measured on a 2-core CPU (1 thread,
# forward + backward, gates at ~50% updates): at T = 22 and 52 the per-update bookkeeping made the
# fast path 1.0-1.8x the explicit path's time (B = 64, H = 64-110, learned gates); from T = 102 to
# 502 it took 0.6-0.9x. Below the threshold `auto` runs the explicit path.
FAST_FROM_STEPS = 100

SKIP_SEARCH_SPACE = {
    "cell.budget_weight": {"type": "float", "low": 1e-7, "high": 1e-2, "log": True},
}


@dataclasses.dataclass(frozen=True)
class SkipOptions(GateOptions):
    section: ClassVar[str] = "cell"
    budget_weight: float = option(0.0, "λ of the budget loss λ·Σ_t u_t (per sequence)", min=0.0)
    update_bias: float = option(1.0, "initial bias b_p of the update-probability layer")
    update_gate: Literal["learned", "always", "never"] = option(
        "learned", "learned: the Skip RNN gate; always/never force u_t = 1/0 (ablations, tests)")


def round_ste(x: Tensor) -> Tensor:
    """round(x) forward, identity gradient backward (the straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


class SkipMixin:
    """Mixed in before a dense cell class: `class SkipLSTM(SkipMixin, LSTM)`."""

    Options = SkipOptions
    torch_module = None
    gradcheck_options: ClassVar[dict] = {"update_gate": "always"}  # round() has no true gradient

    def _init_skip(self) -> None:
        self.update_weight = nn.Parameter(torch.empty(1, self.hidden_size))  # W_p (1, H)
        self.update_bias = nn.Parameter(torch.empty(1))  # b_p (1,)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if "update_weight" in self._parameters:
            with torch.no_grad():
                self.update_bias.fill_(self.options.update_bias)

    @property
    def dense_state_names(self) -> tuple[str, ...]:
        return self.state_names[:-2]

    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,) * len(self.dense_state_names) + (1, 1)

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> State:
        state = list(super().initial_state(batch_size, device=device, dtype=dtype))
        state[-2] = torch.ones_like(state[-2])  # ũ_1 = 1: the first step always updates
        return tuple(state)

    def update_gate(self, u_tilde: Tensor) -> Tensor:
        mode = self.options.update_gate
        if mode == "learned":
            return round_ste(u_tilde)
        return torch.full_like(u_tilde, 1.0 if mode == "always" else 0.0)

    def step(self, xp: Tensor, state: State, t: Tensor | None):
        dense, u_tilde, count = state[:-2], state[-2], state[-1]  # ..., (B, 1), (B, 1)
        u = self.update_gate(u_tilde)  # (B, 1) in {0, 1}
        candidate, aux = super().step(xp, dense, t)
        dense = tuple(torch.lerp(s, new, u) for new, s in zip(candidate, dense))  # u S + (1-u) s, exact at 0 and 1
        delta = torch.sigmoid(F.linear(dense[-1], self.update_weight, self.update_bias))  # (B, 1)
        u_next = u * delta + (1.0 - u) * (u_tilde + torch.minimum(delta, 1.0 - u_tilde))
        return (*dense, u_next, count + u), {**aux, "update": u}

    @classmethod
    def preferred_path(cls, batch: int, steps: int, device: str = "cpu") -> str:
        return "fast" if steps >= FAST_FROM_STEPS else "explicit"

    def fast_sequence(self, x: Tensor, state: State, times: Tensor | None, lengths: Tensor | None = None):
        """Only the updating rows are computed (skip_fast.py); equal to explicit_sequence.
        Declines (None: the unroll runs the explicit path) sequences of unequal lengths."""
        if lengths is not None:
            return None
        return skip_fast.sequence(self, x, state)

    def regularizer(self, state: State) -> Tensor | None:
        if self.options.budget_weight == 0:
            return None
        return self.options.budget_weight * state[-1].mean()  # λ Σ_t u_t, mean over the batch

    @staticmethod
    def updates(state: State) -> Tensor:
        """Per-sequence number of state updates Σ_t u_t from a cell's final state: (B,)."""
        return state[-1].squeeze(-1)
