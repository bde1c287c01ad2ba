"""The one generic unroll: any cell becomes a (stacked, optionally bidirectional) sequence layer.

Stacking, bidirectionality, dropout between layers, default timestamps, sequence lengths,
state packing and the choice of computation path live here once, for every cell.

State layout (as torch.nn): a tuple with one tensor per state component of the cell, each
(num_layers * directions, B, size), ordered layer-major then direction (l0 fwd, l0 bwd, ...).

Lengths (as torch.nn.utils.rnn.pack_padded_sequence): sequence b occupies steps
[0, lengths[b]) of x; the rest is padding. The forward direction stops at its last valid step
(its state is held from there on, its outputs are 0); the backward direction starts there,
reading the valid steps in reverse; so both directions, and the final state, are those torch.nn
computes on the packed sequence, and the padding never enters the computation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from variants.base import Cell, CellOptions, State, Trace, step_mask


def reverse_index(lengths: Tensor, steps: int) -> Tensor:
    """(T, B) gather index that reverses each sequence's first lengths[b] steps and leaves its
    padding in place; applying it twice is the identity."""
    t = torch.arange(steps, device=lengths.device).unsqueeze(1)  # (T, 1)
    last = lengths.unsqueeze(0) - 1  # (1, B)
    return torch.where(t <= last, last - t, t)


def _gather_time(x: Tensor, index: Tensor) -> Tensor:
    """x (T, B, ...) re-indexed along time per sequence by index (T, B)."""
    return x.gather(0, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


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

    def resolve_path(self, path: str, batch: int = 1, steps: int = 1, device: str = "cpu") -> str:
        """The declared path `path` names ("auto": the cell's preferred path for this shape and device)."""
        available = self.cell_cls.paths
        if path == "auto":
            return self.cell_cls.preferred_path(batch, steps, device)
        if path not in available:
            raise ValueError(f"variant {self.cell_cls.name!r} has no {path!r} path; "
                             f"available: {', '.join(available)}")
        return path

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> State:
        per_cell = [c.initial_state(batch_size, device=device, dtype=dtype) for c in self.cells]
        return tuple(torch.stack(parts) for parts in zip(*per_cell))

    def forward(self, x: Tensor, state: State | None = None, *, times: Tensor | None = None,
                lengths: Tensor | None = None, path: str = "auto") -> tuple[Tensor, State]:
        """x (B, T, input_size), times (B, T), lengths (B,) -> outputs (B, T, H*D), final state.

        Raises ValueError for inputs of the wrong shape (naming the shapes) and unknown paths."""
        path = self.resolve_path(path, x.shape[0], x.shape[1] if x.dim() == 3 else 1, x.device.type)
        outputs, final, _ = self._run(x, state, times, lengths, path, traces=None)
        return outputs, final

    def trace(self, x: Tensor, state: State | None = None, *, times: Tensor | None = None,
              lengths: Tensor | None = None, retain_grad: bool = False) -> tuple[Tensor, State, list[Trace]]:
        """The explicit path, recording per-step hidden states and aux tensors of every cell."""
        traces = [Trace(retain_grad=retain_grad) for _ in self.cells]
        outputs, final, traces = self._run(x, state, times, lengths, "explicit", traces)
        return outputs, final, traces

    def regularizer(self, state: State) -> Tensor | None:
        """Sum of the cells' extra loss terms, evaluated on a final state from forward()."""
        terms = [t for i, c in enumerate(self.cells)
                 if (t := c.regularizer(tuple(s[i] for s in state))) is not None]
        return torch.stack(terms).sum() if terms else None

    def _check(self, x: Tensor, times: Tensor | None, lengths: Tensor | None) -> None:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"expected x of shape (B, T, {self.input_size}), got {tuple(x.shape)}")
        B, T = x.shape[:2]
        if times is not None and tuple(times.shape) != (B, T):
            raise ValueError(f"times must have shape (B, T) = {(B, T)} to match x of shape {tuple(x.shape)}, "
                             f"got {tuple(times.shape)}")
        if lengths is not None:
            if tuple(lengths.shape) != (B,) or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
                raise ValueError(f"lengths must be a (B,) = ({B},) integer tensor to match x of shape "
                                 f"{tuple(x.shape)}, got {tuple(lengths.shape)} {lengths.dtype}")
            if B and (int(lengths.min()) < 1 or int(lengths.max()) > T):
                raise ValueError(f"lengths must lie in [1, T = {T}], got min {int(lengths.min())}, "
                                 f"max {int(lengths.max())}")

    def _run(self, x: Tensor, state: State | None, times: Tensor | None, lengths: Tensor | None,
             path: str, traces: list[Trace] | None):
        self._check(x, times, lengths)
        batch, steps = x.shape[0], x.shape[1]
        if state is None:
            state = self.initial_state(batch, device=x.device, dtype=x.dtype)
        if times is None and self.cell_cls.uses_times:
            times = torch.arange(steps, device=x.device, dtype=x.dtype).expand(batch, steps)
        if lengths is not None:
            lengths = lengths.to(device=x.device, dtype=torch.long)
            if bool((lengths == steps).all()):
                lengths = None  # nothing is padded: the plain (faster) computation is the same
        ts = None if times is None else times.transpose(0, 1)  # (T, B)
        backward_index = None if lengths is None else reverse_index(lengths, steps)
        layer_input = x.transpose(0, 1)  # (T, B, input_size): time-major, contiguous steps
        finals, used = [], set()
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self.directions):
                index = layer * self.directions + direction
                cell = self.cells[index]
                cell_state = tuple(s[index] for s in state)
                inp, tt = layer_input, ts
                if direction == 1:  # the backward direction reads each sequence reversed
                    inp, tt = self._reverse(inp, backward_index), (None if tt is None else self._reverse(tt, backward_index))
                if traces is not None:
                    out, fin = cell.explicit_sequence(inp, cell_state, tt, lengths, traces[index])
                    self._orient_trace(traces[index], direction, backward_index, lengths, steps)
                    used.add("explicit")
                else:
                    out, fin, taken = self._sequence(cell, path, inp, cell_state, tt, lengths)
                    used.add(taken)
                outs.append(self._reverse(out, backward_index) if direction == 1 else out)
                finals.append(fin)
            layer_input = outs[0] if self.directions == 1 else torch.cat(outs, dim=-1)
            if self.dropout > 0 and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, self.training)
        final = tuple(torch.stack(parts) for parts in zip(*finals))
        self.last_path = used.pop() if len(used) == 1 else "+".join(sorted(used))
        return layer_input.transpose(0, 1), final, traces

    @staticmethod
    def _sequence(cell: Cell, path: str, x, state, times, lengths):
        """Run one direction of one layer on `path`; a path that declines runs explicitly."""
        if path != "explicit":
            sequence = getattr(cell, f"{path}_sequence")
            if path in cell.float32_paths and torch.is_autocast_enabled(x.device.type):
                # a one-dtype kernel under bf16 autocast: float32 inside, autocast's casts off
                with torch.autocast(x.device.type, enabled=False):
                    result = sequence(x.float(), tuple(s.float() for s in state), times, lengths)
            else:
                result = sequence(x, state, times, lengths)
            if result is not None:
                return (*result, path)
        return (*cell.explicit_sequence(x, state, times, lengths), "explicit")

    @staticmethod
    def _reverse(x: Tensor, index: Tensor | None) -> Tensor:
        return x.flip(0) if index is None else _gather_time(x, index)

    @staticmethod
    def _orient_trace(trace: Trace, direction: int, index: Tensor | None, lengths: Tensor | None,
                      steps: int) -> None:
        """Tell a trace how its records map to the input's time order and which steps are real."""
        if lengths is not None:
            trace.valid = step_mask(lengths, steps).squeeze(-1)  # (T, B)
        if direction == 1:
            if index is None:
                rows = len(trace.hidden[0]) if trace.hidden else 0
                index = torch.arange(steps - 1, -1, -1).unsqueeze(1).expand(steps, rows)
            trace.order = index

    def extra_repr(self) -> str:
        return (f"{self.cell_cls.name}, {self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
                f"dropout={self.dropout}")
