"""Attention maps out of a model: find its attention blocks, capture their inputs, and read their maps one
block of queries at a time, so the ``N×N`` matrix of a large input never exists whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from tam.layers import AttentionBlock, CrissCross, CrossCovarianceAttention, Floor, TransposedAttention

QUERY_BLOCK = 256
MAX_ELEMENTS = 1 << 24  # one map block of at most 16 Mi entries (64 MB in float32)


def attention_blocks(model: nn.Module) -> list[tuple[str, AttentionBlock]]:
    """The attention blocks of ``model`` with their qualified names, in forward order of registration."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, AttentionBlock) and not isinstance(m, Floor)]


@torch.no_grad()
def capture_inputs(model: nn.Module, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Run ``model`` in eval mode on ``images`` and keep the input of every attention block.

    Returns the logits and ``{block name: input}``; a recurrent block (Criss-cross) keeps the input of its
    first pass, which its maps describe.

    Shape:
        images: ``[B, 3, H, W]`` -> logits ``[B, classes]``, inputs ``[B, C, *S]`` per block.
    """
    inputs: dict[str, Tensor] = {}
    handles = [
        block.register_forward_pre_hook(lambda _, args, name=name: inputs.setdefault(name, args[0].detach()))
        for name, block in attention_blocks(model)
    ]
    was_training = model.training
    model.eval()
    try:
        logits = model(images)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return logits, inputs


def has_spatial_map(block: AttentionBlock) -> bool:
    """Whether ``block`` has spatial weights: all kinds but TAM with ``softmax`` and XCA (their maps are only
    ``d×d``, over channels)."""
    if isinstance(block, CrossCovarianceAttention):
        return False
    return not (isinstance(block, TransposedAttention) and block.normalization != "scale")


def key_grid(block: AttentionBlock, spatial: Sequence[int]) -> tuple[int, ...]:
    """The grid the keys of ``block`` lie on: the input's, or half of it (rounded up) with Non-local ``subsample``."""
    if getattr(block, "subsample", False):
        return tuple(math.ceil(side / 2) for side in spatial)
    return tuple(spatial)


def key_support(block: AttentionBlock, spatial: Sequence[int]) -> int:
    """How many keys one query can weigh: its row and column for Criss-cross, every key otherwise."""
    if isinstance(block, CrissCross):
        return spatial[0] + spatial[1] - 1
    return math.prod(key_grid(block, spatial))


def query_positions(spatial: Sequence[int], points: Sequence[Sequence[float]]) -> list[int]:
    """Flat indices of the grid positions nearest to ``points`` given as fractions of each side in ``[0, 1]``."""
    positions = []
    for point in points:
        index = 0
        for side, fraction in zip(spatial, point, strict=True):
            index = index * side + round(fraction * (side - 1))
        positions.append(index)
    return positions


@torch.no_grad()
def map_blocks(
    block: AttentionBlock,
    x: Tensor,
    queries: Sequence[int] | Tensor | None = None,
    *,
    query_block: int = QUERY_BLOCK,
    max_elements: int = MAX_ELEMENTS,
) -> Iterator[tuple[slice, Tensor, Tensor]]:
    """The spatial weights of ``block`` on ``x``, one block of at most ``query_block`` queries at a time.

    Images go in groups small enough that one map block holds at most ``max_elements`` entries (at least one
    image); each group yields all its query blocks before the next group starts.

    Shape:
        x: ``[B, C, *S]``, queries: ``[Q]`` flat positions (all ``N`` when None) ->
        yields ``(images, queries_of_block [q], weights [b, h, q, N_keys])`` with ``images`` a slice of ``B``.
    """
    if query_block < 1:
        raise ValueError(f"query_block must be ≥ 1, got {query_block}")
    n = math.prod(x.shape[2:])
    queries = torch.arange(n, device=x.device) if queries is None else torch.as_tensor(queries, device=x.device)
    block_size = min(query_block, len(queries))
    group = max(1, max_elements // (block.heads * block_size * n))
    for start in range(0, x.shape[0], group):
        images = slice(start, min(start + group, x.shape[0]))
        for chunk in queries.split(block_size):
            yield images, chunk, block.attention_map(x[images], chunk)


def gather_maps(block: AttentionBlock, x: Tensor, queries: Sequence[int], **blocking) -> Tensor:
    """The whole map of a few chosen ``queries``, assembled from :func:`map_blocks` (same ``blocking`` options).

    Shape:
        x: ``[B, C, *S]``, queries: ``Q`` flat positions -> ``[B, h, Q, N_keys]``.
    """
    groups: dict[int, list[Tensor]] = {}
    for images, _, weights in map_blocks(block, x, queries, **blocking):
        groups.setdefault(images.start, []).append(weights)
    return torch.cat([torch.cat(parts, dim=2) for parts in groups.values()])
