"""Attention layers on one shared block shell, their registry and their factory."""

from tam.layers.create import attention_option_defaults, attention_options, create_attention
from tam.layers.criss_cross import CrissCross
from tam.layers.dispatch import Dispatch, force_impl
from tam.layers.efficient import EfficientAttention
from tam.layers.floor import Floor
from tam.layers.global_context import GlobalContext
from tam.layers.linear import LinearAttention
from tam.layers.non_local import NonLocal
from tam.layers.registry import (
    ATTENTION_REGISTRY,
    AttentionKind,
    attention_kind,
    attention_kinds,
    kind_of,
    register_attention,
)
from tam.layers.shell import AttentionBlock
from tam.layers.transposed import TransposedAttention
from tam.layers.xca import CrossCovarianceAttention

__all__ = [
    "ATTENTION_REGISTRY",
    "AttentionBlock",
    "AttentionKind",
    "CrissCross",
    "CrossCovarianceAttention",
    "Dispatch",
    "EfficientAttention",
    "Floor",
    "GlobalContext",
    "LinearAttention",
    "NonLocal",
    "TransposedAttention",
    "attention_kind",
    "attention_kinds",
    "attention_option_defaults",
    "attention_options",
    "create_attention",
    "force_impl",
    "kind_of",
    "register_attention",
]
