"""The registry of recurrent cells.

    import variants
    variants.available()                       # ['gru', 'lstm', ...]
    rnn = variants.create("lstm", 32, 64, num_layers=2, bidirectional=True, forget_bias=2.0)
    outputs, state = rnn(x)                    # x (B, T, 32) -> outputs (B, T, 128)

A variant is one file holding one registered `Cell` subclass; adding one is that file plus
an import line below. Cells from other packages join through the `rnn_harness.variants`
entry point group or a `--plugin module.path` import (see README, "Your own cell").
"""
from __future__ import annotations

from torch import nn

from variants.base import Cell, CellOptions, State, Trace
from variants.registry import REGISTRY, register
from variants.unroll import Recurrent

# One import line per variant file: importing runs its @register.
from variants import simple_rnn, lstm, peephole_lstm, gru, phased_lstm, skip_lstm, skip_gru  # noqa: E402,F401

__all__ = ["Cell", "CellOptions", "Recurrent", "State", "Trace", "REGISTRY", "register",
           "available", "get", "create", "from_torch"]


def available() -> list[str]:
    """Registered variant names, sorted."""
    return REGISTRY.names()


def get(name: str) -> type[Cell]:
    """The cell class registered as `name` (unknown names raise, listing the valid ones)."""
    return REGISTRY.get(name)


def create(name: str, input_size: int, hidden_size: int, *, num_layers: int = 1,
           bidirectional: bool = False, dropout: float = 0.0, **cell_options) -> Recurrent:
    """A sequence layer of the named cell: forward(x (B, T, input_size), state=None, *, times=None)."""
    cls = REGISTRY.get(name)
    return Recurrent(cls, input_size, hidden_size, num_layers=num_layers,
                     bidirectional=bidirectional, dropout=dropout,
                     options=cls.make_options(**cell_options))


def from_torch(module: nn.Module) -> Recurrent:
    """The variant equivalent to a torch.nn.RNN (tanh), LSTM or GRU, with its weights.

    The result always takes batch-first input; torch's two bias vectors are folded into one
    where the cell has a single bias (lstm, simple_rnn), which computes the same function.
    """
    matches = [cls for _, cls in REGISTRY.items() if cls.torch_module is type(module)]
    if not matches:
        supported = ", ".join(sorted(c.torch_module.__name__ for _, c in REGISTRY.items() if c.torch_module))
        raise ValueError(f"no variant converts {type(module).__name__}; supported: {supported}")
    if getattr(module, "proj_size", 0):
        raise ValueError("LSTMs with proj_size > 0 have no equivalent variant")
    if getattr(module, "nonlinearity", "tanh") != "tanh":
        raise ValueError("only tanh RNNs have an equivalent variant (simple_rnn)")
    (cls,) = matches
    layer = Recurrent(cls, module.input_size, module.hidden_size, num_layers=module.num_layers,
                      bidirectional=module.bidirectional, dropout=module.dropout)
    for index, cell in enumerate(layer.cells):
        suffix = f"_l{index // layer.directions}" + ("_reverse" if index % layer.directions else "")
        cell.load_torch_weights(
            getattr(module, "weight_ih" + suffix), getattr(module, "weight_hh" + suffix),
            getattr(module, "bias_ih" + suffix, None), getattr(module, "bias_hh" + suffix, None))
    param = next(module.parameters())
    return layer.to(device=param.device, dtype=param.dtype)
