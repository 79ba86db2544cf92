"""The model a training config describes, built the one way `tam train`, `tam analyze` and the tests share."""

from __future__ import annotations

from torch import nn

from tam.errors import UserError
from tam.train.config import TrainConfig


def model_from_config(config: TrainConfig, num_classes: int) -> nn.Module:
    """The model ``config`` describes, freshly initialised; bad model options become a one-line UserError."""
    from tam.models import create_model

    attention = None if config.attention == "none" else config.attention
    options = {"heads": config.heads, **config.attention_options} if attention else {}
    try:
        return create_model(config.model, num_classes=num_classes, attention=attention,
                            attention_blocks=config.attention_blocks and tuple(config.attention_blocks),
                            preset=config.preset, **options)
    except (ValueError, TypeError) as error:
        raise UserError(f"model: {error}") from None
