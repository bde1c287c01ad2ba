"""GRU: Cho et al. 2014, "Learning Phrase Representations using RNN Encoder-Decoder", in the
"reset after" form of torch.nn.GRU and Keras (reset_after=True, the cuDNN-compatible form):

    r_t = σ(W_r x_t + b_ir + U_r h_{t-1} + b_hr)
    z_t = σ(W_z x_t + b_iz + U_z h_{t-1} + b_hz)
    n_t = tanh(W_n x_t + b_in + r_t ⊙ (U_n h_{t-1} + b_hn))
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

z_t keeps the old state, so it plays the forget gate's role: the forget-gate initialisation
sets b_iz (constant, or chrono's log U(1, T_max - 1)). Two bias vectors, as Keras:
3·(h·(h + x) + 2·h) parameters (x = 32, h = 32: 6,336).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from variants import fast, fused
from variants.base import Cell, State
from variants.init import GateOptions, init_weights, set_forget_bias
from variants.lstm import GATED_SEARCH_SPACE
from variants.registry import register


@register
class GRU(Cell):
    name = "gru"
    # b_hn sits inside the reset gate's product: its gradient sums T bf16-rounded terms that nearly
    # cancel (36% relative error at T = 512, tests/test_variant_long.py); the other weights stay < 2%
    bf16_tolerance = (5e-2, 2e-2, 0.5)
    Options = GateOptions
    state_names = ("h",)
    paths = ("fused", "fast", "explicit")
    torch_module = nn.GRU
    search_space = GATED_SEARCH_SPACE

    @classmethod
    def preferred_path(cls, batch: int, steps: int, device: str = "cpu") -> str:
        """cuDNN's GRU on a GPU; on a CPU our fast path: oneDNN's GRU measured 0.87-0.95x the
        explicit path's forward+backward time, the fast path 0.53-0.87x (B = 8-64, H = 16-64,
        T = 22-228, 1 thread)."""
        return "fused" if device == "cuda" else "fast"

    def __init__(self, input_size: int, hidden_size: int, options: GateOptions | None = None):
        super().__init__(input_size, hidden_size, options)
        H = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(3 * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * H, H))
        self.bias_ih = nn.Parameter(torch.empty(3 * H))
        self.bias_hh = nn.Parameter(torch.empty(3 * H))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_weights(self, self.weight_ih, self.weight_hh, [self.bias_ih, self.bias_hh])
        H = self.hidden_size
        with torch.no_grad():
            self.bias_hh[H:2 * H].zero_()
        set_forget_bias(self.options, self.bias_ih[H:2 * H], None)

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, *self.input_projection())  # (..., 3H)

    def input_projection(self) -> tuple[Tensor, Tensor]:
        """(weight, bias) of `project`, for fast paths that differentiate it themselves."""
        return self.weight_ih, self.bias_ih

    def step(self, xp: Tensor, state: State, t: Tensor | None):
        (h,) = state  # (B, H)
        gh = torch.addmm(self.bias_hh, h, self.weight_hh.t())  # (B, 3H)
        xr, xz, xn = xp.chunk(3, dim=1)  # (B, H) each
        hr, hz, hn = gh.chunk(3, dim=1)  # (B, H) each
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)  # (B, H)
        h = n + z * (h - n)  # (1 - z) n + z h, one op fewer
        return (h,), {"gate_reset": r, "gate_update": z}

    def fused_biases(self) -> list[Tensor]:
        return [self.bias_ih, self.bias_hh]

    def fused_sequence(self, x: Tensor, state: State, times: Tensor | None, lengths: Tensor | None = None):
        out, h = fused.gru(self, x, state[0], lengths)
        return out, (h,)

    fast_kernel = fast.GRUKernel  # the per-step kernel of the fast paths (kernels.py)

    def fast_parameters(self) -> tuple[Tensor, ...]:
        return (self.weight_hh, self.bias_hh)

    def fast_sequence(self, x: Tensor, state: State, times: Tensor | None, lengths: Tensor | None = None):
        return fast.sequence(self.fast_kernel, self.project(x), state, self.fast_parameters(), lengths=lengths)

    @torch.no_grad()
    def load_torch_weights(self, weight_ih: Tensor, weight_hh: Tensor,
                           bias_ih: Tensor | None, bias_hh: Tensor | None) -> None:
        self.weight_ih.copy_(weight_ih)
        self.weight_hh.copy_(weight_hh)
        for mine, theirs in ((self.bias_ih, bias_ih), (self.bias_hh, bias_hh)):
            mine.copy_(theirs) if theirs is not None else mine.zero_()
