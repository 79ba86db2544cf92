"""Learning-rate schedules, evaluated per optimizer step so short runs and warm-up stay smooth.

``step``: the thesis schedule, lr x ``gamma`` at each milestone epoch. ``cosine``: half a cosine from the peak
to zero over the run. Both may start with a linear warm-up of ``warmup_epochs``; warm-up then cosine is the
one-cycle shape used for short budgets.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from tam.train.config import TrainConfig


def lr_factor(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The multiplier of the peak lr at optimizer step ``step`` (0-based)."""
    warmup = config.warmup_epochs * steps_per_epoch
    total = config.epochs * steps_per_epoch
    milestones = [m * steps_per_epoch for m in config.milestones]

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "step":
            return config.gamma ** sum(step >= m for m in milestones)
        progress = min(1.0, (step - warmup) / max(1.0, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler to ``step()`` after every optimizer step; its state dict is plain data."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, steps_per_epoch))
