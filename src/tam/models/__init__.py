"""Backbones with attention placed per stage, a timm-style registry, and placement into any CNN."""

from tam.models import preresnet, wideresnet  # noqa: F401  (registers the models)
from tam.models.placement import insert_attention
from tam.models.preresnet import PreResNet
from tam.models.registry import ModelInfo, create_model, list_models, model_info, register_model
from tam.models.units import PreActBasic, PreActBottleneck

__all__ = [
    "ModelInfo",
    "PreActBasic",
    "PreActBottleneck",
    "PreResNet",
    "create_model",
    "insert_attention",
    "list_models",
    "model_info",
    "register_model",
]
