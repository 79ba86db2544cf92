"""Attention layers on one shared block shell, their registry and their factory."""

from tam.layers.create import attention_option_defaults, attention_options, create_attention
from tam.layers.criss_cross import CrissCross
from tam.layers.dispatch import Dispatch, force_impl
from tam.layers.floor import Floor
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

__all__ = [
    "ATTENTION_REGISTRY",
    "AttentionBlock",
    "AttentionKind",
    "CrissCross",
    "Dispatch",
    "Floor",
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
