"""The cell protocol: what a recurrent cell implements, and what it may add.

A cell maps (x_t, state_{t-1}) -> state_t, where state[0] is always the output h_t (B, H).
The input-dependent part of every step is split off as `project(x)` so that the generic
unroll (unroll.py) can compute it for all T steps in one matmul; `step` then only does the
recurrent part. Stacking, bidirectionality, dropout, timestamps and sequence lengths are
the unroll's job, never the cell's.

Required of every cell (a subclass of `Cell`):
  name                      registry name (class attribute)
  project(x)                (..., input_size) -> (..., G): the input part of a step, any leading dims
  step(xp, state, t)        one step from the projected input xp (B, G), state (tuple of (B, ·)) and
                            the timestamps t (B,) (None unless `uses_times`) -> (new state, aux dict)

Optional, each with its contract (the base class supplies the default):
  Options                   frozen options dataclass (subclass of CellOptions); default CellOptions
  state_names               names of the state tensors, state[0] = h; default ("h",)
  state_sizes()             size of each state tensor; default hidden_size for each
  initial_state(B)          default zeros
  uses_times                True if `step` reads t; default False
  reset_parameters()        re-initialise; default: nothing (parameters made in __init__ are kept)
  regularizer(state)        an extra loss term from a final state (Skip RNN's budget); default None
  paths                     sequence paths, "explicit" (the reference: a loop over `step`) always
                            included. Every other name P needs a method
                            `P_sequence(x, state, times, lengths)` with explicit_sequence's shapes.
                            Contract (checked by the test suite for every declared path): outputs,
                            final states and gradients equal the explicit path's within `tolerance`
                            [P] (rtol, atol) in float32. A path may decline an input it does not
                            support by returning None; the unroll then runs the explicit path.
  float32_paths             paths whose kernels are written for one dtype: under autocast (bf16
                            training) the unroll runs them in float32, autocast off, inputs and
                            state cast up; default ("fast",). Other paths run under autocast.
  bf16_tolerance            (rtol, atol, grad) within which any path under bf16 autocast agrees
                            with the explicit path in float32 (checked by the suite at T = 512):
                            outputs, final states and input gradients within (rtol, atol), each
                            weight gradient within a relative norm error `grad`; default
                            BF16_TOLERANCE.
  preferred_path(B, T, dev)  which declared path "auto" uses for B sequences of T steps on a device
                            type ("cpu", "cuda"); default the first declared. A rule of shapes and
                            device only, never of timing, so the same run always takes the same path.
  torch_module, load_torch_weights(...)   the torch.nn class this cell equals, and loading its weights
  search_space              per-family hyperparameter ranges for sweeps, as plain data
  gradcheck_options         options under which `torch.autograd.gradcheck` applies (e.g. a Skip RNN
                            with its non-differentiable round() forced off)

Aux tensors returned by `step` are named "gate_<name>" for gates (reported as mean and
saturated fraction) and freely otherwise (reported as mean).

Sequence lengths (`lengths`, (B,) integers, as torch's packing functions): the valid steps of
sequence b are x[:lengths[b], b]; after them its state stays as it was and its outputs are 0,
as torch.nn on a packed sequence.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from harness.config import Options, option

State = tuple[Tensor, ...]
DEFAULT_TOLERANCE = (1e-5, 1e-5)  # (rtol, atol) of a path against the explicit one, float32
# (rtol, atol, weight-gradient relative norm error) of any path under bf16 autocast against explicit
# float32: bf16 keeps 8 bits of mantissa, and a weight gradient sums T rounded terms
BF16_TOLERANCE = (5e-2, 2e-2, 0.05)


@dataclasses.dataclass(frozen=True)
class CellOptions(Options):
    """Options every cell accepts."""

    section: ClassVar[str] = "cell"
    weight_init: Literal["uniform", "keras"] = option(
        "uniform", "uniform: U(-1/sqrt(H), 1/sqrt(H)) as torch.nn; keras: Keras' defaults (Glorot input, "
        "orthogonal recurrent, zero biases; the model's embedding and head too)")


@dataclasses.dataclass
class Trace:
    """What the explicit path records per step when asked (for probes and gate statistics).

    Steps are recorded in the order the cell ran them; a backward direction ran its sequences
    reversed, so `order` (T, B) maps each input step back (None: the same order)."""

    retain_grad: bool = False
    hidden: list[Tensor] = dataclasses.field(default_factory=list)  # h per step run, each (B, H)
    aux: dict[str, list[Tensor]] = dataclasses.field(default_factory=dict)
    order: Tensor | None = None  # (T, B) gather index from run order to input order
    valid: Tensor | None = None  # (T, B) bool, input order: which steps are real (None: all)

    def record(self, state: State, aux: dict[str, Tensor]) -> None:
        h = state[0]
        if self.retain_grad and h.requires_grad:
            h.retain_grad()
        self.hidden.append(h)
        for key, value in aux.items():
            self.aux.setdefault(key, []).append(value.detach())

    def in_input_order(self, stacked: Tensor) -> Tensor:
        """A (T, B, ...) stack of per-step values, re-ordered to the input's time order."""
        if self.order is None:
            return stacked
        index = self.order.view(*self.order.shape, *([1] * (stacked.dim() - 2))).expand_as(stacked)
        return stacked.gather(0, index.to(stacked.device))

    def stacked_aux(self) -> dict[str, Tensor]:
        return {key: self.in_input_order(torch.stack(values)) for key, values in self.aux.items()}  # (T, B, ·)

    def hidden_grads(self) -> Tensor:
        """dL/dh per step (T, B, H) in input order (zeros where no gradient arrived)."""
        grads = [h.grad if h.grad is not None else torch.zeros_like(h) for h in self.hidden]
        return self.in_input_order(torch.stack(grads).detach())


def step_mask(lengths: Tensor, steps: int) -> Tensor:
    """(T, B, 1) bool: step t of sequence b is valid (t < lengths[b])."""
    t = torch.arange(steps, device=lengths.device).unsqueeze(1)  # (T, 1)
    return (t < lengths.unsqueeze(0)).unsqueeze(-1)


class Cell(nn.Module):
    """One time step of a recurrent cell (the protocol: see the module docstring)."""

    name: ClassVar[str]
    Options: ClassVar[type[CellOptions]] = CellOptions
    state_names: ClassVar[tuple[str, ...]] = ("h",)
    uses_times: ClassVar[bool] = False
    paths: ClassVar[tuple[str, ...]] = ("explicit",)
    tolerance: ClassVar[dict[str, tuple[float, float]]] = {}
    float32_paths: ClassVar[tuple[str, ...]] = ("fast",)
    bf16_tolerance: ClassVar[tuple[float, float, float]] = BF16_TOLERANCE
    torch_module: ClassVar[type[nn.Module] | None] = None
    search_space: ClassVar[dict[str, dict]] = {}
    gradcheck_options: ClassVar[dict] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A path without its method would fail only when first used: refuse the class now.
        if "explicit" not in cls.paths:
            raise TypeError(f"{cls.__qualname__}.paths must include 'explicit' (the reference path)")
        missing = [p for p in cls.paths if p != "explicit" and not callable(getattr(cls, f"{p}_sequence", None))]
        if missing:
            raise TypeError(f"{cls.__qualname__} declares path {missing[0]!r} but has no {missing[0]}_sequence method")

    def __init__(self, input_size: int, hidden_size: int, options: CellOptions | None = None):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.options = options if options is not None else self.Options()

    # -- required ----------------------------------------------------------------------------
    def project(self, x: Tensor) -> Tensor:
        """Input-dependent part of a step, for any leading dims: (..., input_size) -> (..., G)."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement project(x)")

    def step(self, xp: Tensor, state: State, t: Tensor | None) -> tuple[State, dict[str, Tensor]]:
        """One time step from the projected input xp (B, G); returns (new state, aux)."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement step(xp, state, t)")

    # -- optional, with defaults -------------------------------------------------------------
    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,) * len(self.state_names)

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> State:
        return tuple(torch.zeros(batch_size, size, device=device, dtype=dtype)
                     for size in self.state_sizes())

    def reset_parameters(self) -> None:
        """Re-initialise the parameters; the default keeps those made in __init__."""

    def regularizer(self, state: State) -> Tensor | None:
        """An extra loss term computed from the final state (e.g. the Skip RNN budget)."""
        return None

    @classmethod
    def preferred_path(cls, batch: int, steps: int, device: str = "cpu") -> str:
        """The path "auto" takes for B sequences of T steps on a device type (a rule, not a timing)."""
        return cls.paths[0]

    @classmethod
    def path_tolerance(cls, path: str) -> tuple[float, float]:
        """(rtol, atol) within which `path` agrees with the explicit path in float32."""
        return cls.tolerance.get(path, DEFAULT_TOLERANCE)

    # -- shared behaviour ----------------------------------------------------------------------
    def forward(self, x: Tensor, state: State | None = None, t: Tensor | None = None) -> tuple[Tensor, State]:
        """A single time step on raw input x (B, input_size): returns (h_t, state_t)."""
        if state is None:
            state = self.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        state, _ = self.step(self.project(x), state, t)
        return state[0], state

    def explicit_sequence(self, x: Tensor, state: State, times: Tensor | None, lengths: Tensor | None = None,
                          trace: Trace | None = None) -> tuple[Tensor, State]:
        """Reference path: x (T, B, input_size), times (T, B), lengths (B,) -> outputs (T, B, H),
        final state. With lengths, steps past a sequence's end keep its state and output 0."""
        xp = self.project(x)  # (T, B, G): all input projections in one matmul
        # unbind, not xp[s]: indexing would make every step's backward zero-fill and add a
        # whole (T, B, G) gradient (quadratic in T); unbind's backward is one stack.
        steps = xp.unbind(0)
        ts = [None] * len(steps) if times is None else times.unbind(0)
        valid = [None] * len(steps) if lengths is None else step_mask(lengths, len(steps)).unbind(0)
        outputs = []
        for xp_t, t, ok in zip(steps, ts, valid):
            new, aux = self.step(xp_t, state, t)
            if ok is not None:  # (B, 1): a finished sequence keeps its state
                new = tuple(torch.where(ok, n, s) for n, s in zip(new, state))
            state = new
            if trace is not None:
                trace.record(state, aux)
            outputs.append(state[0] if ok is None else state[0] * ok)
        if not outputs:
            return xp.new_zeros(0, *state[0].shape), state
        return torch.stack(outputs), state  # (T, B, H)

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
