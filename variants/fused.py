"""torch.nn's fused recurrent kernels (oneDNN on CPU, cuDNN on GPU) on a cell's own parameters.

`torch._VF.{lstm,gru,rnn_tanh}` are the exact kernels `nn.LSTM/GRU/RNN.forward` call; calling
them with the cell's tensors lets the fused and explicit paths share one set of parameters.
Cells with a single bias vector (Keras-style parameter counts) pass zeros as the second bias.
"""
from __future__ import annotations

from torch import Tensor, _VF


def _weights(cell) -> list[Tensor]:
    return [cell.weight_ih, cell.weight_hh, *cell.fused_biases()]


def lstm(cell, x: Tensor, h0: Tensor, c0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """x (T, B, input_size) -> outputs (T, B, H), h_T, c_T (B, H)."""
    out, h, c = _VF.lstm(x, (h0[None], c0[None]), _weights(cell), True, 1, 0.0, cell.training, False, False)
    return out, h[0], c[0]


def gru(cell, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    out, h = _VF.gru(x, h0[None], _weights(cell), True, 1, 0.0, cell.training, False, False)
    return out, h[0]


def rnn_tanh(cell, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    out, h = _VF.rnn_tanh(x, h0[None], _weights(cell), True, 1, 0.0, cell.training, False, False)
    return out, h[0]


def load_folded(cell, weight_ih: Tensor, weight_hh: Tensor,
                bias_ih: Tensor | None, bias_hh: Tensor | None) -> None:
    """Load torch.nn weights into a cell with one bias vector: b = b_ih + b_hh."""
    cell.weight_ih.data.copy_(weight_ih)
    cell.weight_hh.data.copy_(weight_hh)
    cell.bias.data.zero_()
    for b in (bias_ih, bias_hh):
        if b is not None:
            cell.bias.data.add_(b)
