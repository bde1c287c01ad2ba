"""The [train] section of a run's configuration (optimizer, schedule, steps, device, seed).

Kept apart from trainer.py, which runs the training: the spec assembles its sections from
the configs alone, and trainer.py imports the spec, so the config must not live there.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from harness.config import Options, option


@dataclasses.dataclass(frozen=True)
class TrainConfig(Options):
    section: ClassVar[str] = "train"
    seed: int = option(0, "seeds the weights, dropout and the data streams")
    device: str = option("auto", "auto (CUDA when available), cpu, cuda or cuda:N")
    steps: int = option(1500, "optimizer steps: the run's length on generated tasks; on dataset tasks (imdb, "
                        "imdb_lm: trained for train.epochs) a cap, off unless given (0 = no cap)", min=0)
    epochs: int = option(10, "epochs for dataset tasks (imdb, imdb_lm); train.steps, when given, stops the run "
                         "earlier", min=1)
    batch_size: int = option(64, "sequences per step", min=1)
    lr: float = option(1e-3, "learning rate", min=0.0)
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = option("adam", "optimizer")
    weight_decay: float = option(0.0, "weight decay", min=0.0)
    eps: float = option(1e-8, "optimizer epsilon (torch's default; Keras uses 1e-7)", min=0.0)
    rmsprop_alpha: float = option(0.99, "RMSprop smoothing constant (torch's default; Keras' rho is 0.9)",
                                  min=0.0, max=1.0)
    clip: float = option(1.0, "gradient-norm clipping threshold (0 = off)", min=0.0)
    schedule: Literal["constant", "cosine", "linear"] = option("constant", "learning-rate schedule after warm-up")
    warmup_steps: int = option(0, "linear learning-rate warm-up steps", min=0)
    eval_every: int = option(0, "steps between evaluations (0 = 10 per run, or once per epoch)", min=0)
    evals_per_doubling: int = option(0, "0: evaluate every train.eval_every steps; k > 0: a geometric schedule, at "
                                     "steps round(eval_every * 2^(j/k)), j = 0, 1, ..., the same whatever "
                                     "train.steps is, so a shorter run's evaluations are a prefix of a longer one's "
                                     "(needs eval_every > 0)", min=0, max=64)
    patience: int = option(0, "early stopping after this many evaluations without improvement (0 = off)", min=0)
    stop_when_solved: bool = option(False, "stop at the first evaluation whose validation metrics meet the task's "
                                    "success criterion (train until solved; steps_to_solve is recorded)")
    log_every: int = option(10, "steps between training-loss logs (and divergence checks)", min=1)
    checkpoint_every: int = option(0, "steps between checkpoints (0 = at every evaluation)", min=0)
    precision: Literal["fp32", "bf16"] = option("fp32", "bf16: forward and loss under bfloat16 autocast (CPU and "
                                                "CUDA), weights and optimizer in float32 (harness/training/numerics.py)")
    deterministic: bool = option(False, "torch.use_deterministic_algorithms and cuDNN/cuBLAS determinism (slower "
                                 "on CUDA; an op without a deterministic kernel then raises)")
    memory_check: bool = option(True, "refuse a run whose estimated memory (harness/training/memory.py) exceeds "
                                "what the device has free; false if the estimate is wrong")
    threads: int = option(0, "CPU threads for torch (0 = automatic, see harness/training/threads.py); the count used "
                          "is recorded as the run's `threads` tag", min=0)
