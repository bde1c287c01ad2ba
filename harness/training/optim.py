"""The optimizer and learning-rate schedule of a run's [train] section (torch.optim)."""
from __future__ import annotations

import math
from typing import Callable

import torch

from harness.training.train_config import TrainConfig


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    """train.optimizer with its lr, weight decay, epsilon (and RMSprop's alpha) over `params`."""
    kinds = {"adam": (torch.optim.Adam, {"eps": config.eps}), "adamw": (torch.optim.AdamW, {"eps": config.eps}),
             "rmsprop": (torch.optim.RMSprop, {"eps": config.eps, "alpha": config.rmsprop_alpha}),
             "sgd": (torch.optim.SGD, {})}
    kind, options = kinds[config.optimizer]
    return kind(params, lr=config.lr, weight_decay=config.weight_decay, **options)


def lr_factor(config: TrainConfig, total: int) -> Callable[[int], float]:
    """The LambdaLR factor at each step: linear warm-up, then constant, cosine or linear decay
    over the remaining steps of `total`."""
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
        if config.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        if config.schedule == "linear":
            return max(0.0, 1 - progress)
        return 1.0
    return factor
