"""Phased LSTM: Neil, Pfeiffer & Liu 2016, "Phased LSTM: Accelerating Recurrent Network
Training for Long or Event-based Sequences" (NeurIPS).

An LSTM whose updates are gated by a per-unit oscillation of the timestamp t:

    φ_t = ((t - s) mod τ) / τ
    k_t = 2 φ_t / r_on           if φ_t < r_on / 2        (opening)
          2 - 2 φ_t / r_on       if r_on / 2 <= φ_t < r_on (closing)
          α φ_t                  otherwise                 (closed, leaky)
    c̃_t, h̃_t = the ordinary LSTM update from (x_t, h_{t-1}, c_{t-1})
    c_t = k_t ⊙ c̃_t + (1 - k_t) ⊙ c_{t-1}
    h_t = k_t ⊙ h̃_t + (1 - k_t) ⊙ h_{t-1}

τ (period), s (shift) and r_on (open ratio) are learned per unit. As the authors' code:
τ ~ exp(U(1, 3)), s ~ U(0, τ), r_on = 0.05, leak α = 1e-3 in training and 0 at evaluation.
Parameters: the LSTM's 4·h·(h + x) + 4·h plus 3·h. Reads `times` (default 0, 1, 2, ...).
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor, nn

from harness.config import option
from variants import fast
from variants.base import State
from variants.init import GateOptions
from variants.lstm import GATED_SEARCH_SPACE, LSTM
from variants.registry import register


@dataclasses.dataclass(frozen=True)
class PhasedOptions(GateOptions):
    section: ClassVar[str] = "cell"
    period_low: float = option(1.0, "τ is initialised as exp(U(period_low, period_high))")
    period_high: float = option(3.0, "upper end of the log-period initialisation range")
    shift_max: float = option(0.0, "s ~ U(0, shift_max); 0 means U(0, τ) per unit", min=0.0)
    r_on: float = option(0.05, "initial open ratio r_on", min=1e-4, max=1.0)
    leak: float = option(1e-3, "leak α while the gate is closed (training only; 0 at eval)", min=0.0)
    learn_time: bool = option(True, "learn τ, s and r_on (False keeps them at their initial values)")


@register
class PhasedLSTM(LSTM):
    name = "phased_lstm"
    Options = PhasedOptions
    uses_times = True
    paths = ("fast", "explicit")
    torch_module = None
    search_space = {
        **GATED_SEARCH_SPACE,
        "cell.period_high": {"type": "float", "low": 2.0, "high": 6.0},
        "cell.r_on": {"type": "float", "low": 0.01, "high": 0.2, "log": True},
    }

    def __init__(self, input_size: int, hidden_size: int, options: PhasedOptions | None = None):
        super().__init__(input_size, hidden_size, options)
        learn = self.options.learn_time
        self.period = nn.Parameter(torch.empty(hidden_size), requires_grad=learn)  # τ (H,)
        self.shift = nn.Parameter(torch.empty(hidden_size), requires_grad=learn)  # s (H,)
        self.r_on = nn.Parameter(torch.empty(hidden_size), requires_grad=learn)  # (H,)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if "period" not in self._parameters:
            return  # the LSTM part is initialised first, the time gate once it exists
        o = self.options
        with torch.no_grad():
            self.period.uniform_(o.period_low, o.period_high).exp_()
            self.shift.uniform_(0.0, 1.0).mul_(self.period if o.shift_max == 0 else o.shift_max)
            self.r_on.fill_(o.r_on)

    def openness(self, t: Tensor) -> Tensor:
        """k_t for timestamps t (...,) -> (..., H) in the parameters' dtype.

        The phase (t - s) mod τ is computed in float64 whatever the dtype of t (float or int):
        event timestamps (1e6 and more) cast to float32 first would lose the fraction of a
        period that the gate reads (at 1e7 float32 resolves only whole units)."""
        dtype = self.period.dtype
        tau = self.period.double().abs() + 1e-6  # (H,)
        r_on = self.r_on.double().abs().clamp(1e-4, 1.0)  # (H,)
        phi = torch.remainder(t.double().unsqueeze(-1) - self.shift.double(), tau) / tau  # (..., H)
        leak = self.options.leak if self.training else 0.0
        ramp = 2.0 * phi / r_on  # rises 0 -> 1 on [0, r_on/2], 1 -> 2 on [r_on/2, r_on]
        k = torch.where(phi < 0.5 * r_on, ramp, torch.where(phi < r_on, 2.0 - ramp, leak * phi))
        return k.to(dtype)

    def step(self, xp: Tensor, state: State, t: Tensor | None):
        h, c = state  # (B, H), (B, H)
        (h_new, c_new), aux = super().step(xp, state, t)
        k = self.openness(t).to(h.dtype)  # (B, H)
        c = torch.lerp(c, c_new, k)  # k c̃ + (1 - k) c, exact at k = 0 and 1
        h = torch.lerp(h, h_new, k)  # k h̃ + (1 - k) h
        return (h, c), {**aux, "openness": k}

    def fast_sequence(self, x: Tensor, state: State, times: Tensor | None, lengths: Tensor | None = None):
        k = self.openness(times).to(x.dtype)  # (T, B, H): all steps at once, with autograd
        return fast.sequence(self.fast_kernel, self.project(x), state, self.fast_parameters(), mix=k,
                             lengths=lengths)
