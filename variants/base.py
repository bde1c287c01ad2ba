"""The contract every recurrent cell implements: one time step, plus optional fast paths.

A cell maps (x_t, state_{t-1}) -> state_t, where state[0] is always the output h_t (B, H).
The input-dependent part of every step is split off as `project(x)` so that the generic
unroll can compute it for all T steps in one matmul; `step` then only does the recurrent
part. `explicit_sequence` is the reference path (a plain loop over `step`, instrumentable);
a cell may add faster paths (`fused` through torch.nn kernels, `fast` custom kernels) that
must agree with it — the test suite checks outputs and gradients against the reference.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from harness.config import Options, option

State = tuple[Tensor, ...]


@dataclasses.dataclass(frozen=True)
class CellOptions(Options):
    """Options every cell accepts."""

    section: ClassVar[str] = "cell"
    weight_init: Literal["uniform", "keras"] = option(
        "uniform", "uniform: U(-1/sqrt(H), 1/sqrt(H)) as torch.nn; keras: Keras' defaults (Glorot input, "
        "orthogonal recurrent, zero biases; the model's embedding and head too)")


@dataclasses.dataclass
class Trace:
    """What the explicit path records per step when asked (for probes and gate statistics)."""

    retain_grad: bool = False
    hidden: list[Tensor] = dataclasses.field(default_factory=list)  # h_t per step, each (B, H)
    aux: dict[str, list[Tensor]] = dataclasses.field(default_factory=dict)

    def record(self, state: State, aux: dict[str, Tensor]) -> None:
        h = state[0]
        if self.retain_grad and h.requires_grad:
            h.retain_grad()
        self.hidden.append(h)
        for key, value in aux.items():
            self.aux.setdefault(key, []).append(value.detach())

    def stacked_aux(self) -> dict[str, Tensor]:
        return {key: torch.stack(values) for key, values in self.aux.items()}  # (T, B, ·)


class Cell(nn.Module):
    """One time step of a recurrent cell. Subclasses live one per file in `variants/`.

    Class attributes a subclass sets:
      name         registry name
      Options      frozen options dataclass (subclass of CellOptions)
      state_names  names of the state tensors; state[0] is h, the output
      uses_times   True if `step` reads the timestamps
      paths        sequence paths, preferred first; "explicit" is always available
      torch_module torch.nn class whose weights this cell can load (for `from_torch`), if any
      search_space per-family hyperparameter ranges for sweeps, as plain data
    Aux tensors returned by `step` are named "gate_<name>" for gates (reported as mean and
    saturated fraction) and freely otherwise (reported as mean).
    """

    name: ClassVar[str]
    Options: ClassVar[type[CellOptions]] = CellOptions
    state_names: ClassVar[tuple[str, ...]] = ("h",)
    uses_times: ClassVar[bool] = False
    paths: ClassVar[tuple[str, ...]] = ("explicit",)
    torch_module: ClassVar[type[nn.Module] | None] = None
    search_space: ClassVar[dict[str, dict]] = {}

    def __init__(self, input_size: int, hidden_size: int, options: CellOptions | None = None):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.options = options if options is not None else self.Options()

    # -- what a subclass implements ------------------------------------------------------
    def project(self, x: Tensor) -> Tensor:
        """Input-dependent part of a step, for any leading dims: (..., input_size) -> (..., G)."""
        raise NotImplementedError

    def step(self, xp: Tensor, state: State, t: Tensor | None) -> tuple[State, dict[str, Tensor]]:
        """One time step from the projected input xp (B, G); returns (new state, aux)."""
        raise NotImplementedError

    # -- shared behaviour ------------------------------------------------------------------
    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,) * len(self.state_names)

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> State:
        return tuple(torch.zeros(batch_size, size, device=device, dtype=dtype)
                     for size in self.state_sizes())

    def forward(self, x: Tensor, state: State | None = None, t: Tensor | None = None) -> tuple[Tensor, State]:
        """A single time step on raw input x (B, input_size): returns (h_t, state_t)."""
        if state is None:
            state = self.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        state, _ = self.step(self.project(x), state, t)
        return state[0], state

    def explicit_sequence(self, x: Tensor, state: State, times: Tensor | None,
                          trace: Trace | None = None) -> tuple[Tensor, State]:
        """Reference path: x (T, B, input_size) -> outputs (T, B, H), final state."""
        xp = self.project(x)  # (T, B, G): all input projections in one matmul
        # unbind, not xp[s]: indexing would make every step's backward zero-fill and add a
        # whole (T, B, G) gradient (quadratic in T); unbind's backward is one stack.
        steps = xp.unbind(0)
        ts = [None] * len(steps) if times is None else times.unbind(0)
        outputs = []
        for xp_t, t in zip(steps, ts):
            state, aux = self.step(xp_t, state, t)
            if trace is not None:
                trace.record(state, aux)
            outputs.append(state[0])
        return torch.stack(outputs), state  # (T, B, H)

    def regularizer(self, state: State) -> Tensor | None:
        """An extra loss term computed from the final state (e.g. the Skip RNN budget)."""
        return None

    def reset_parameters(self) -> None:
        raise NotImplementedError

    @classmethod
    def make_options(cls, **values) -> CellOptions:
        known = {f.name for f in dataclasses.fields(cls.Options)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"variant {cls.name!r} has no option {unknown[0]!r}; "
                             f"its options: {', '.join(sorted(known))}")
        return cls.Options(**values)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"
