"""String -> attention layer factory (timm's ``create_attn`` convention), over :mod:`tam.layers.registry`."""

from __future__ import annotations

from torch import nn

from tam.layers.registry import NONE, attention_kind
from tam.layers.shell import check_int


def attention_option_defaults(kind: str) -> dict[str, object]:
    """The keyword options the layer of ``kind`` accepts, each with its default value."""
    return attention_kind(kind).option_defaults()


def attention_options(kind: str) -> list[str]:
    """Names of the keyword options the layer of ``kind`` accepts."""
    return list(attention_option_defaults(kind))


def create_attention(kind: str | None, channels: int, *, blocks: int = 1, **options) -> nn.Module:
    """Build ``blocks`` stacked attention layers of ``kind`` for ``channels`` channels.

    Args:
        kind: a registered kind (:func:`~tam.layers.registry.attention_kinds`: ``"tam"``, ``"nl"``, ``"cc"``,
            ...) or ``"none"`` (or ``None``); ``"floor"`` is the shell without attention, for benchmarks.
        channels: input and output channels.
        blocks: number of stacked blocks (0 gives the identity).
        **options: options of the layer (``heads``, ``embed_channels``, ``normalization``, ...).

    Returns:
        the layer itself for one block, an ``nn.Sequential`` for several, ``nn.Identity`` for none.

    Example:
        >>> create_attention("tam", 64, blocks=2, heads=8)(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])
    """
    kind = NONE if kind is None else kind
    if kind != NONE:
        entry = attention_kind(kind)
    blocks = check_int("blocks", blocks, 0)
    if kind == NONE or blocks == 0:
        if options:
            raise TypeError(f"attention options {sorted(options)} given, but kind={kind!r} with blocks={blocks}")
        return nn.Identity()
    allowed = entry.options()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for kind={kind!r}; allowed: {allowed}")
    layers = [entry.layer(channels, **options) for _ in range(blocks)]
    return layers[0] if blocks == 1 else nn.Sequential(*layers)

