"""The one generic unroll: any cell becomes a (stacked, optionally bidirectional) sequence layer.

Stacking, bidirectionality, dropout between layers, default timestamps, state packing and
the choice of computation path live here once, for every cell.

State layout (as torch.nn): a tuple with one tensor per state component of the cell, each
(num_layers * directions, B, size), ordered layer-major then direction (l0 fwd, l0 bwd, ...).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from variants.base import Cell, CellOptions, State, Trace


class Recurrent(nn.Module):
    """A sequence layer built from a cell class. forward(x (B, T, input_size)) -> (B, T, H*D)."""

    def __init__(self, cell_cls: type[Cell], input_size: int, hidden_size: int, *,
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0,
                 options: CellOptions | None = None):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.cell_cls = cell_cls
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.directions = 2 if bidirectional else 1
        self.dropout = dropout
        options = options if options is not None else cell_cls.Options()
        self.cells = nn.ModuleList(
            cell_cls(input_size if layer == 0 else hidden_size * self.directions, hidden_size, options)
            for layer in range(num_layers) for _ in range(self.directions)
        )
        self.last_path: str | None = None  # which computation path the last forward used

    @property
    def bidirectional(self) -> bool:
        return self.directions == 2

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.directions

    @property
    def options(self) -> CellOptions:
        return self.cells[0].options

    def resolve_path(self, path: str) -> str:
        available = self.cell_cls.paths
        if path == "auto":
            return available[0]
        if path not in available:
            raise ValueError(f"variant {self.cell_cls.name!r} has no {path!r} path; "
                             f"available: {', '.join(available)}")
        return path

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> State:
        per_cell = [c.initial_state(batch_size, device=device, dtype=dtype) for c in self.cells]
        return tuple(torch.stack(parts) for parts in zip(*per_cell))

    def forward(self, x: Tensor, state: State | None = None, *, times: Tensor | None = None,
                path: str = "auto") -> tuple[Tensor, State]:
        """x (B, T, input_size), times (B, T) -> outputs (B, T, H*D), final state."""
        path = self.resolve_path(path)
        outputs, final, _ = self._run(x, state, times, path, traces=None)
        self.last_path = path
        return outputs, final

    def trace(self, x: Tensor, state: State | None = None, *, times: Tensor | None = None,
              retain_grad: bool = False) -> tuple[Tensor, State, list[Trace]]:
        """The explicit path, recording per-step hidden states and aux tensors of every cell."""
        traces = [Trace(retain_grad=retain_grad) for _ in self.cells]
        outputs, final, traces = self._run(x, state, times, "explicit", traces)
        self.last_path = "explicit"
        return outputs, final, traces

    def regularizer(self, state: State) -> Tensor | None:
        """Sum of the cells' extra loss terms, evaluated on a final state from forward()."""
        terms = [t for i, c in enumerate(self.cells)
                 if (t := c.regularizer(tuple(s[i] for s in state))) is not None]
        return torch.stack(terms).sum() if terms else None

    def _run(self, x: Tensor, state: State | None, times: Tensor | None, path: str,
             traces: list[Trace] | None):
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"expected x of shape (B, T, {self.input_size}), got {tuple(x.shape)}")
        batch, steps = x.shape[0], x.shape[1]
        if state is None:
            state = self.initial_state(batch, device=x.device, dtype=x.dtype)
        if times is None and self.cell_cls.uses_times:
            times = torch.arange(steps, device=x.device, dtype=x.dtype).expand(batch, steps)
        ts = None if times is None else times.transpose(0, 1)  # (T, B)
        layer_input = x.transpose(0, 1)  # (T, B, input_size): time-major, contiguous steps
        finals = []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self.directions):
                index = layer * self.directions + direction
                cell = self.cells[index]
                cell_state = tuple(s[index] for s in state)
                inp, tt = layer_input, ts
                if direction == 1:  # the backward direction reads the sequence reversed
                    inp = inp.flip(0)
                    tt = None if tt is None else tt.flip(0)
                if traces is None:
                    out, fin = getattr(cell, f"{path}_sequence")(inp, cell_state, tt)
                else:
                    out, fin = cell.explicit_sequence(inp, cell_state, tt, traces[index])
                    if direction == 1:
                        traces[index].hidden.reverse()
                        for values in traces[index].aux.values():
                            values.reverse()
                outs.append(out.flip(0) if direction == 1 else out)
                finals.append(fin)
            layer_input = outs[0] if self.directions == 1 else torch.cat(outs, dim=-1)
            if self.dropout > 0 and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, self.training)
        final = tuple(torch.stack(parts) for parts in zip(*finals))
        return layer_input.transpose(0, 1), final, traces

    def extra_repr(self) -> str:
        return (f"{self.cell_cls.name}, {self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
                f"dropout={self.dropout}")
