"""tam: the Transposed Attention Module and its baselines, for convolutional networks."""

from tam import functional, presets
from tam.layers import CrissCross, NonLocal, TransposedAttention, create_attention, force_impl
from tam.models import create_model, insert_attention, list_models, model_info

__version__ = "0.1.0"

__all__ = [
    "CrissCross",
    "NonLocal",
    "TransposedAttention",
    "create_attention",
    "create_model",
    "force_impl",
    "functional",
    "insert_attention",
    "list_models",
    "model_info",
    "presets",
]
