"""Weight and gate-bias initialisation shared by the cells.

Forget-gate bias matters more than any other initialisation choice for long lags:
Jozefowicz et al. 2015 recommend a constant 1; Tallec & Ollivier 2018 ("Can recurrent
neural networks warp time?") derive `chrono`: b_f ~ log U(1, T_max - 1), b_i = -b_f,
for dependencies up to T_max steps.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from harness.config import option
from variants.base import CellOptions


@dataclasses.dataclass(frozen=True)
class GateOptions(CellOptions):
    """Options of every gated cell (the same forget-gate initialisation everywhere)."""

    section: ClassVar[str] = "cell"
    forget_init: Literal["constant", "chrono"] = option(
        "constant", "forget-gate bias initialisation: a constant (forget_bias) or chrono "
        "(Tallec & Ollivier 2018: b_f ~ log U(1, chrono_max - 1), b_i = -b_f)")
    forget_bias: float = option(1.0, "constant forget-gate bias (Jozefowicz et al. 2015 use 1)")
    chrono_max: int = option(
        0, "T_max for chrono init; 0 = the task's longest sequence (filled in by the harness)", min=0)


def uniform_(cell: nn.Module) -> None:
    """torch.nn's default: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(cell.hidden_size)
    for param in cell.parameters():
        nn.init.uniform_(param, -bound, bound)


def keras_(weight_ih: Tensor, weight_hh: Tensor, biases: list[Tensor]) -> None:
    """Keras defaults: Glorot-uniform kernel, orthogonal recurrent kernel, zero biases."""
    nn.init.xavier_uniform_(weight_ih)
    nn.init.orthogonal_(weight_hh)
    for bias in biases:
        nn.init.zeros_(bias)


def init_weights(cell: nn.Module, weight_ih: Tensor, weight_hh: Tensor, biases: list[Tensor]) -> None:
    if cell.options.weight_init == "keras":
        keras_(weight_ih, weight_hh, biases)
    else:
        uniform_(cell)


@torch.no_grad()
def set_forget_bias(options: GateOptions, forget: Tensor, input_gate: Tensor | None) -> None:
    """Write the forget-gate bias (and, for chrono, the input-gate bias) in place.

    `forget` and `input_gate` are views of the bias vector(s) for those gates (H,).
    """
    if options.forget_init == "constant":
        forget.fill_(options.forget_bias)
        return
    if options.chrono_max < 3:
        raise ValueError("chrono initialisation needs chrono_max >= 3 (the longest dependency "
                         "in steps); pass chrono_max=... or let the harness set it from the task")
    values = torch.empty_like(forget).uniform_(1.0, options.chrono_max - 1).log_()
    forget.copy_(values)
    if input_gate is not None:
        input_gate.copy_(-values)
