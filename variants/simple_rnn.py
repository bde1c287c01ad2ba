"""SimpleRNN: the Elman network (Elman 1990, "Finding Structure in Time"), as Keras SimpleRNN:

    h_t = tanh(W x_t + U h_{t-1} + b)

One bias vector: h·(h + x) + h parameters (x = 32, h = 32: 2,080).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from variants import fast, fused
from variants.base import Cell, CellOptions, State
from variants.init import init_weights
from variants.registry import register


@register
class SimpleRNN(Cell):
    name = "simple_rnn"
    # torch.nn.RNN under bf16 autocast runs the whole recurrence in bf16: the second layer's
    # recurrent weight gradient is 26% off float32 at T = 512 (the explicit path: 1%)
    bf16_tolerance = (5e-2, 2e-2, 0.4)
    Options = CellOptions
    state_names = ("h",)
    paths = ("fused", "fast", "explicit")
    torch_module = nn.RNN

    @classmethod
    def preferred_path(cls, batch: int, steps: int, device: str = "cpu") -> str:
        """cuDNN's RNN on a GPU; on a CPU our fast path, which measured 0.67-0.81x the explicit
        path's time against 0.92-1.07x for oneDNN's (B = 8-64, H = 16-64, T = 22-125, 1 thread)."""
        return "fused" if device == "cuda" else "fast"

    def __init__(self, input_size: int, hidden_size: int, options: CellOptions | None = None):
        super().__init__(input_size, hidden_size, options)
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_weights(self, self.weight_ih, self.weight_hh, [self.bias])

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias)  # (..., H)

    def step(self, xp: Tensor, state: State, t: Tensor | None):
        (h,) = state  # (B, H)
        h = torch.tanh(torch.addmm(xp, h, self.weight_hh.t()))  # (B, H)
        return (h,), {}

    def fused_biases(self) -> list[Tensor]:
        return [self.bias, torch.zeros_like(self.bias)]

    def fused_sequence(self, x: Tensor, state: State, times: Tensor | None, lengths: Tensor | None = None):
        out, h = fused.rnn_tanh(self, x, state[0], lengths)
        return out, (h,)

    def fast_sequence(self, x: Tensor, state: State, times: Tensor | None, lengths: Tensor | None = None):
        return fast.sequence(fast.RNNKernel, self.project(x), state, (self.weight_hh,), lengths=lengths)

    def load_torch_weights(self, weight_ih, weight_hh, bias_ih, bias_hh) -> None:
        fused.load_folded(self, weight_ih, weight_hh, bias_ih, bias_hh)
