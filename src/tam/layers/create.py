"""String -> attention layer factory (timm's ``create_attn`` convention)."""

from __future__ import annotations

import inspect

from torch import nn

from tam.layers.criss_cross import CrissCross
from tam.layers.floor import Floor
from tam.layers.non_local import NonLocal
from tam.layers.shell import AttentionBlock, check_int
from tam.layers.transposed import TransposedAttention

ATTENTION_LAYERS: dict[str, type[AttentionBlock]] = {
    "tam": TransposedAttention,
    "nl": NonLocal,
    "cc": CrissCross,
    "floor": Floor,
}
KINDS = (*ATTENTION_LAYERS, "none")


def attention_option_defaults(kind: str) -> dict[str, object]:
    """The keyword options the layer of ``kind`` accepts, each with its default value."""
    defaults: dict[str, object] = {}
    for cls in ATTENTION_LAYERS[kind].__mro__:
        if cls in (nn.Module, object):
            continue
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if param.kind is param.KEYWORD_ONLY and name not in defaults:
                defaults[name] = param.default
    if kind == "cc":
        del defaults["geometry"]
    return defaults


def attention_options(kind: str) -> list[str]:
    """Names of the keyword options the layer of ``kind`` accepts."""
    return list(attention_option_defaults(kind))


def create_attention(kind: str | None, channels: int, *, blocks: int = 1, **options) -> nn.Module:
    """Build ``blocks`` stacked attention layers of ``kind`` for ``channels`` channels.

    Args:
        kind: ``"tam"`` | ``"nl"`` | ``"cc"`` | ``"none"`` (or ``None``); ``"floor"`` is the shell without
            attention, for benchmarks.
        channels: input and output channels.
        blocks: number of stacked blocks (0 gives the identity).
        **options: options of the layer (``heads``, ``embed_channels``, ``normalization``, ...).

    Returns:
        the layer itself for one block, an ``nn.Sequential`` for several, ``nn.Identity`` for none.

    Example:
        >>> create_attention("tam", 64, blocks=2, heads=8)(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])
    """
    kind = "none" if kind is None else kind
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    blocks = check_int("blocks", blocks, 0)
    if kind == "none" or blocks == 0:
        if options:
            raise TypeError(f"attention options {sorted(options)} given, but kind={kind!r} with blocks={blocks}")
        return nn.Identity()
    allowed = attention_options(kind)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for kind={kind!r}; allowed: {allowed}")
    layers = [ATTENTION_LAYERS[kind](channels, **options) for _ in range(blocks)]
    return layers[0] if blocks == 1 else nn.Sequential(*layers)
