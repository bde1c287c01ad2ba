"""LSTM: Hochreiter & Schmidhuber 1997, "Long Short-Term Memory", with the forget gate of
Gers, Schmidhuber & Cummins 2000, "Learning to Forget".

    i_t = σ(W_i x_t + U_i h_{t-1} + b_i)
    f_t = σ(W_f x_t + U_f h_{t-1} + b_f)
    g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)
    o_t = σ(W_o x_t + U_o h_{t-1} + b_o)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    h_t = o_t ⊙ tanh(c_t)

Gate order i, f, g, o as torch.nn.LSTM. One bias vector, as Keras, so the parameter count is
4·h·(h + x) + 4·h (x = 32, h = 32: 8,320); `from_torch` folds torch's two biases into it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from variants import fast, fused
from variants.base import Cell, State
from variants.init import GateOptions, init_weights, set_forget_bias
from variants.registry import register

GATED_SEARCH_SPACE = {
    "cell.forget_bias": {"type": "float", "low": 0.0, "high": 5.0},
}


@register
class LSTM(Cell):
    name = "lstm"
    Options = GateOptions
    state_names = ("h", "c")
    paths = ("fused", "fast", "explicit")
    torch_module = nn.LSTM
    search_space = GATED_SEARCH_SPACE

    def __init__(self, input_size: int, hidden_size: int, options: GateOptions | None = None):
        super().__init__(input_size, hidden_size, options)
        H = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * H, H))
        self.bias = nn.Parameter(torch.empty(4 * H))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_weights(self, self.weight_ih, self.weight_hh, [self.bias])
        H = self.hidden_size
        set_forget_bias(self.options, self.bias[H:2 * H], self.bias[:H])

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, *self.input_projection())  # (..., 4H)

    def input_projection(self) -> tuple[Tensor, Tensor]:
        """(weight, bias) of `project`, for fast paths that differentiate it themselves."""
        return self.weight_ih, self.bias

    def step(self, xp: Tensor, state: State, t: Tensor | None):
        h, c = state  # (B, H), (B, H)
        gates = torch.addmm(xp, h, self.weight_hh.t())  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)  # (B, H) each
        i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
        c = f * c + i * torch.tanh(g)  # (B, H)
        h = o * torch.tanh(c)  # (B, H)
        return (h, c), {"gate_input": i, "gate_forget": f, "gate_output": o}

    def fused_biases(self) -> list[Tensor]:
        return [self.bias, torch.zeros_like(self.bias)]

    def fused_sequence(self, x: Tensor, state: State, times: Tensor | None, lengths: Tensor | None = None):
        out, h, c = fused.lstm(self, x, *state, lengths)
        return out, (h, c)

    fast_kernel = fast.LSTMKernel  # the per-step kernel of the fast paths (kernels.py)

    def fast_parameters(self) -> tuple[Tensor, ...]:
        """What the fast path's kernel takes besides the projected inputs."""
        return (self.weight_hh,)

    def fast_sequence(self, x: Tensor, state: State, times: Tensor | None, lengths: Tensor | None = None):
        return fast.sequence(self.fast_kernel, self.project(x), state, self.fast_parameters(), lengths=lengths)

    def load_torch_weights(self, weight_ih, weight_hh, bias_ih, bias_hh) -> None:
        fused.load_folded(self, weight_ih, weight_hh, bias_ih, bias_hh)
