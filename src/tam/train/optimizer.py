"""The optimizer: SGD with momentum, weight decay on every parameter (the thesis recipe) or on the weights of
convolutions and linear layers only (``decay_norm_and_bias=False``, timm's default: decaying BatchNorm scales
and biases only shrinks them, as BatchNorm undoes the scale of the weights before it)."""

from __future__ import annotations

import torch
from torch import nn

from tam.train.config import TrainConfig


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD over ``model``'s parameters with ``config``'s lr, momentum, Nesterov flag and weight decay.

    With ``config.decay_norm_and_bias`` off, parameters of at most one dimension (norm scales and shifts,
    biases) form a second group without weight decay; the first group holds the rest.
    """
    options = dict(lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    if config.decay_norm_and_bias:
        return torch.optim.SGD(model.parameters(), weight_decay=config.weight_decay, **options)
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if p.dim() > 1], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, **options)
