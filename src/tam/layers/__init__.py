"""Attention layers on one shared block shell, and their factory."""

from tam.layers.create import ATTENTION_LAYERS, KINDS, attention_options, create_attention
from tam.layers.criss_cross import CrissCross
from tam.layers.floor import Floor
from tam.layers.non_local import NonLocal
from tam.layers.shell import AttentionBlock
from tam.layers.transposed import TransposedAttention

__all__ = [
    "ATTENTION_LAYERS",
    "KINDS",
    "AttentionBlock",
    "CrissCross",
    "Floor",
    "NonLocal",
    "TransposedAttention",
    "attention_options",
    "create_attention",
]
