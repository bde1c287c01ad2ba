"""Peephole LSTM: Gers & Schmidhuber 2000, "Recurrent Nets that Time and Count".

The gates also see the cell state through diagonal ("peephole") weights p:

    i_t = σ(W_i x_t + U_i h_{t-1} + p_i ⊙ c_{t-1} + b_i)
    f_t = σ(W_f x_t + U_f h_{t-1} + p_f ⊙ c_{t-1} + b_f)
    g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    o_t = σ(W_o x_t + U_o h_{t-1} + p_o ⊙ c_t + b_o)      (the output gate peeks at c_t)
    h_t = o_t ⊙ tanh(c_t)

Parameters: the LSTM's 4·h·(h + x) + 4·h plus 3·h peephole weights. With p = 0 it is the LSTM.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from variants.base import State
from variants.kernels import LSTMKernel
from variants.lstm import LSTM
from variants.registry import register


class PeepholeKernel(LSTMKernel):
    """The fast path's step of the peephole LSTM (kernels.py's contract): the LSTM kernel with
    i and f reading c_{t-1} and o reading c_t. Its backward adds the peephole terms:
      ∂h_t/∂c_t     += ∂h_t/∂o_pre · p_o
      ∂c_t/∂c_{t-1} = f_t + ∂c_t/∂i_pre · p_i + ∂c_t/∂f_pre · p_f"""

    def __init__(self, w_hh: Tensor, peephole: Tensor):
        super().__init__(w_hh)
        self.p = peephole  # (3, H): p_i, p_f, p_o

    def allocate(self, count: int, rows: int, like: Tensor) -> None:
        super().allocate(count, rows, like)
        self._if = self.acts.view(count, rows, 4, self.H)[:, :, :2].unbind(0)  # i, f pre-activations (n, 2, H)

    def step(self, t: int, xg: Tensor, prev, out) -> None:
        (h, c), (h_out, c_out) = prev, out
        torch.addmm(xg, h, self.wt, out=self._a[t])  # (n, 4H) pre-activations
        self._if[t].addcmul_(self.p[:2], c.unsqueeze(1))  # i and f peek at c_{t-1}
        self._activate(t, c, c_out)
        o = self._o[t].addcmul_(self.p[2], c_out)  # o peeks at the new c_t
        o.sigmoid_()
        torch.mul(o, torch.tanh(c_out, out=self._tc[t]), out=h_out)

    def prepare_backward(self, prev, new) -> None:
        super().prepare_backward(prev, new)
        p_i, p_f, p_o = self.p
        grad = self.gate_grad
        self.dh_to_dc.addcmul_(grad[:, :, 3], p_o)
        self.dc_to_prev = self.dc_to_prev + grad[:, :, 0] * p_i + grad[:, :, 1] * p_f
        self.views()

    def finish(self, prev, new, d_out):
        dxp, dw = super().finish(prev, new, d_out)
        dg = self.dgates
        dp = torch.stack([(dg[:, :, 0] * prev[1]).sum((0, 1)), (dg[:, :, 1] * prev[1]).sum((0, 1)),
                          (dg[:, :, 3] * new[1]).sum((0, 1))])  # (3, H)
        return dxp, dw, dp


@register
class PeepholeLSTM(LSTM):
    name = "peephole_lstm"
    paths = ("fast", "explicit")
    torch_module = None

    def __init__(self, input_size: int, hidden_size: int, options=None):
        super().__init__(input_size, hidden_size, options)
        self.peephole = nn.Parameter(torch.empty(3, hidden_size))  # rows: p_i, p_f, p_o
        self.reset_parameters()  # again, now that every parameter exists

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if "peephole" in self._parameters and self.options.weight_init == "keras":
            nn.init.zeros_(self.peephole)

    fast_kernel = PeepholeKernel

    def fast_parameters(self) -> tuple[Tensor, ...]:
        return (self.weight_hh, self.peephole)

    def step(self, xp: Tensor, state: State, t: Tensor | None):
        h, c = state  # (B, H), (B, H)
        gates = torch.addmm(xp, h, self.weight_hh.t())  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)  # (B, H) each
        p_i, p_f, p_o = self.peephole  # (H,) each
        i = torch.sigmoid(i + p_i * c)
        f = torch.sigmoid(f + p_f * c)
        c = f * c + i * torch.tanh(g)  # (B, H)
        o = torch.sigmoid(o + p_o * c)
        h = o * torch.tanh(c)  # (B, H)
        return (h, c), {"gate_input": i, "gate_forget": f, "gate_output": o}
