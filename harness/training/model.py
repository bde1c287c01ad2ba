"""The model every run trains: input encoding -> a variant's sequence layer -> a linear head.

What differs between tasks (token embedding or float features, one prediction per sequence
or per step, timestamps) is read from the task object; what differs between cells (extra
loss terms, timestamps, computation paths) from the cell. Nothing here branches on a name.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor, nn

import variants
from harness.config import Options, option
from tasks import Batch, Task
from variants import CellOptions, State, Trace


@dataclasses.dataclass(frozen=True)
class ModelConfig(Options):
    section: ClassVar[str] = "model"
    variant: str = option("lstm", "recurrent cell (python -m harness list shows all)")
    hidden_size: int = option(64, "state size H per direction", min=1)
    num_layers: int = option(1, "stacked recurrent layers", min=1)
    bidirectional: bool = option(False, "add a backward direction to every layer")
    dropout: float = option(0.0, "dropout between stacked layers", min=0.0, max=0.99)
    embedding_dim: int = option(32, "embedding size for token tasks (imdb)", min=1)
    path: str = option("auto", "computation path: auto (fastest available), fused, fast or explicit")


def resolve_cell_options(cls: type[variants.Cell], options: CellOptions, task: Task) -> CellOptions:
    """Fill in what depends on the task: chrono's T_max defaults to the longest sequence."""
    if getattr(options, "chrono_max", None) == 0:
        options = options.replace(chrono_max=max(3, task.max_length))
    return options


class SequenceModel(nn.Module):
    def __init__(self, config: ModelConfig, cell_options: CellOptions, task: Task):
        super().__init__()
        self.config = config
        if task.vocab_size:
            self.embedding = nn.Embedding(task.vocab_size, config.embedding_dim)
            input_size = config.embedding_dim
        else:
            self.embedding = None
            input_size = task.input_size
        cls = variants.get(config.variant)
        self.rnn = variants.Recurrent(
            cls, input_size, config.hidden_size, num_layers=config.num_layers,
            bidirectional=config.bidirectional, dropout=config.dropout, options=cell_options)
        self.head = task.make_head(self.rnn.output_size)
        self.per_step = task.per_step
        if cell_options.weight_init == "keras":  # every cell has it (CellOptions)
            self.keras_layers()

    @torch.no_grad()
    def keras_layers(self) -> None:
        """Keras' defaults for the layers around the cell: Embedding uniform(-0.05, 0.05),
        Dense glorot-uniform with zero bias (torch's N(0, 1) embedding feeds a 32-unit tanh
        cell inputs ~30x larger than the Keras recipe does)."""
        if self.embedding is not None:
            nn.init.uniform_(self.embedding.weight, -0.05, 0.05)
        if isinstance(self.head, nn.Linear):  # a task's own head keeps its own initialisation
            nn.init.xavier_uniform_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def encode(self, batch: Batch) -> Tensor:
        return self.embedding(batch.x) if self.embedding is not None else batch.x  # (B, T, input)

    def readout(self, outputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Per-step features (B, T, H*D), or the final features of each direction (B, H*D): the
        forward direction's output at each sequence's last valid step (T - 1 without lengths),
        the backward direction's at step 0, where it ends."""
        if self.per_step:
            return outputs
        H = self.rnn.hidden_size
        if lengths is None:
            last = outputs[:, -1]  # (B, H*D)
        else:
            index = (lengths.to(outputs.device) - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])
            last = outputs.gather(1, index).squeeze(1)  # (B, H*D)
        if self.rnn.directions == 1:
            return last
        return torch.cat([last[:, :H], outputs[:, 0, H:]], dim=-1)

    def forward(self, batch: Batch, path: str | None = None, state: State | None = None) -> tuple[Tensor, State]:
        """Logits (B, output) or (B, T, output), and the final state (state: the initial one,
        e.g. carried from the previous chunk of a stream; None = zeros)."""
        outputs, state = self.rnn(self.encode(batch), state, times=batch.times, lengths=batch.lengths,
                                  path=path or self.config.path)
        return self.head(self.readout(outputs, batch.lengths)), state

    def regularizer(self, state: State) -> Tensor | None:
        return self.rnn.regularizer(state)

    def trace(self, x: Tensor, batch: Batch, *, retain_grad: bool = False
              ) -> tuple[Tensor, State, list[Trace]]:
        """The explicit path from already-encoded inputs x, recording every step."""
        outputs, state, traces = self.rnn.trace(x, times=batch.times, lengths=batch.lengths,
                                                retain_grad=retain_grad)
        return self.head(self.readout(outputs, batch.lengths)), state, traces

    @property
    def path(self) -> str | None:
        return self.rnn.last_path


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
