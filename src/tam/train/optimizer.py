"""The optimizer: SGD with momentum, weight decay on every parameter (the thesis recipe) or on the weights of
convolutions and linear layers only (``decay_norm_and_bias=False``, timm's default: decaying BatchNorm scales
and biases only shrinks them, as BatchNorm undoes the scale of the weights before it). Either way, parameters a
module names in its ``no_weight_decay()`` (timm's convention; XCA's temperature) are never decayed."""

from __future__ import annotations

import torch
from torch import nn

from tam.train.config import TrainConfig


def no_weight_decay(model: nn.Module) -> set[int]:
    """Ids of the parameters that some module of ``model`` excludes from weight decay by ``no_weight_decay()``."""
    return {
        id(getattr(module, name))
        for module in model.modules()
        if callable(getattr(module, "no_weight_decay", None))
        for name in module.no_weight_decay()
    }


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD over ``model``'s trainable parameters with ``config``'s lr, momentum, Nesterov flag and weight decay.

    A second group without weight decay holds the parameters modules exclude (``no_weight_decay()``) and, with
    ``config.decay_norm_and_bias`` off, those of at most one dimension (norm scales and shifts, biases); the
    first group holds the rest (an empty group is left out: the thesis recipe on a model without exclusions has one).
    """
    options = dict(lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    excluded = no_weight_decay(model)
    params = [p for p in model.parameters() if p.requires_grad]

    def decayed(p: nn.Parameter) -> bool:
        return id(p) not in excluded and (config.decay_norm_and_bias or p.dim() > 1)

    groups = [
        {"params": [p for p in params if decayed(p)], "weight_decay": config.weight_decay},
        {"params": [p for p in params if not decayed(p)], "weight_decay": 0.0},
    ]
    return torch.optim.SGD([group for group in groups if group["params"]], **options)
