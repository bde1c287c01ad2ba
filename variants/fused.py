"""torch.nn's fused recurrent kernels (oneDNN on CPU, cuDNN on GPU) on a cell's own parameters.

`torch._VF.{lstm,gru,rnn_tanh}` are the exact kernels `nn.LSTM/GRU/RNN.forward` call; calling
them with the cell's tensors lets the fused and explicit paths share one set of parameters.
Cells with a single bias vector (Keras-style parameter counts) pass zeros as the second bias.
With sequence lengths the kernels run on a PackedSequence, as nn.LSTM does on packed input.
"""
from __future__ import annotations

import torch
from torch import Tensor, _VF
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence


def _weights(cell) -> list[Tensor]:
    return [cell.weight_ih, cell.weight_hh, *cell.fused_biases()]


def run(kernel, cell, x: Tensor, hx: tuple[Tensor, ...], lengths: Tensor | None) -> tuple[Tensor, ...]:
    """One fused layer: x (T, B, input_size), hx of (B, H) -> outputs (T, B, H), *final (B, H).

    kernel is _VF.lstm, _VF.gru or _VF.rnn_tanh; lengths (B,) runs it on the packed sequence
    (outputs past a sequence's end are 0 and its final state is taken at its last step)."""
    hx = tuple(h[None] for h in hx)  # (1, B, H): one layer, one direction
    single = lambda h: h[0] if len(h) == 1 else h  # noqa: E731  (gru/rnn take a tensor, lstm a tuple)
    if lengths is None:
        out, *final = kernel(x, single(hx), _weights(cell), True, 1, 0.0, cell.training, False, False)
        return (out, *(f[0] for f in final))
    packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
    order, unorder = packed.sorted_indices, packed.unsorted_indices
    hx = tuple(h.index_select(1, order) for h in hx)
    out, *final = kernel(packed.data, packed.batch_sizes, single(hx), _weights(cell), True, 1, 0.0,
                         cell.training, False)
    out, _ = pad_packed_sequence(PackedSequence(out, packed.batch_sizes, order, unorder), total_length=x.shape[0])
    return (out, *(f.index_select(1, unorder)[0] for f in final))


def lstm(cell, x: Tensor, h0: Tensor, c0: Tensor, lengths: Tensor | None = None):
    """x (T, B, input_size) -> outputs (T, B, H), h_T, c_T (B, H)."""
    return run(_VF.lstm, cell, x, (h0, c0), lengths)


def gru(cell, x: Tensor, h0: Tensor, lengths: Tensor | None = None):
    return run(_VF.gru, cell, x, (h0,), lengths)


def rnn_tanh(cell, x: Tensor, h0: Tensor, lengths: Tensor | None = None):
    return run(_VF.rnn_tanh, cell, x, (h0,), lengths)


def load_folded(cell, weight_ih: Tensor, weight_hh: Tensor,
                bias_ih: Tensor | None, bias_hh: Tensor | None) -> None:
    """Load torch.nn weights into a cell with one bias vector: b = b_ih + b_hh."""
    with torch.no_grad():
        cell.weight_ih.copy_(weight_ih)
        cell.weight_hh.copy_(weight_hh)
        cell.bias.zero_()
        for b in (bias_ih, bias_hh):
            if b is not None:
                cell.bias.add_(b)
