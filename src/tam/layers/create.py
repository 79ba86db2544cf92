"""String -> attention layer factory (timm's ``create_attn`` convention), over :mod:`tam.layers.registry`."""

from __future__ import annotations

from torch import nn

from tam.layers.registry import NONE, attention_kind
from tam.layers.shell import check_int, check_positive
from tam.presets import apply_preset, get_preset


def attention_option_defaults(kind: str) -> dict[str, object]:
    """The keyword options the layer of ``kind`` accepts, each with its default value."""
    return attention_kind(kind).option_defaults()


def attention_options(kind: str) -> list[str]:
    """Names of the keyword options the layer of ``kind`` accepts."""
    return list(attention_option_defaults(kind))


def embed_width(channels: int, embed_ratio: object) -> int:
    """The embed width ``E = embed_ratio · channels``; a clear error unless that is a whole number ≥ 1.

    Example:
        >>> embed_width(128, 0.5)
        64
    """
    product = check_positive("embed_ratio", embed_ratio) * channels
    if abs(product - round(product)) > 1e-9 * product or round(product) < 1:
        raise ValueError(
            f"embed_ratio={embed_ratio} gives a non-integer embed width {product:g} for {channels} channels"
        )
    return round(product)


def create_attention(
    kind: str | None, channels: int, *, blocks: int = 1, preset: str | None = None, **options
) -> nn.Module:
    """Build ``blocks`` stacked attention layers of ``kind`` for ``channels`` channels.

    Args:
        kind: a registered kind (:func:`~tam.layers.registry.attention_kinds`: ``"tam"``, ``"nl"``, ``"cc"``,
            ...) or ``"none"`` (or ``None``); ``"floor"`` is the shell without attention, for benchmarks.
        channels: input and output channels.
        blocks: number of stacked blocks (0 gives the identity).
        preset: a name from :data:`tam.presets.PRESETS`: the layer conventions of a published implementation
            (``"icip2022"``: the thesis code); an option given here that contradicts it is refused.
        **options: options of the layer (``heads``, ``embed_channels``, ``normalization``, ...), and
            ``embed_ratio``: the embed width as a fraction of ``channels``, ``E = embed_ratio · channels``
            (instead of ``embed_channels``), so that one value gives every stage of a model, or every site of
            :func:`tam.insert_attention`, a width in proportion to its own channels.

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
    if preset is not None:
        get_preset(preset)
    if kind == NONE or blocks == 0:
        if options:
            raise TypeError(f"attention options {sorted(options)} given, but kind={kind!r} with blocks={blocks}")
        return nn.Identity()
    if preset is not None:
        options = apply_preset(preset, options, kind=kind)
    embed_ratio = options.pop("embed_ratio", None)
    if embed_ratio is not None:
        if options.get("embed_channels") is not None:
            raise TypeError("give embed_channels or embed_ratio, not both")
        options["embed_channels"] = embed_width(channels, embed_ratio)
    allowed = entry.options()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for kind={kind!r}; allowed: {allowed}")
    # Positions placed on the input become part of the stream: the stack adds them once, at its input.
    later = {**options, "pos_encoding": None} if options.get("pos_encoding_placement") == "input" else options
    layers = [entry.layer(channels, **options)] + [entry.layer(channels, **later) for _ in range(blocks - 1)]
    return layers[0] if blocks == 1 else nn.Sequential(*layers)

