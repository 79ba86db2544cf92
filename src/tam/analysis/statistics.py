"""Per-block statistics on a batch of real inputs: what each key receives, how spread the rows are, and the
spectrum of TAM's ``d×d`` map. Maps are reduced one query block at a time (:func:`~tam.analysis.maps.map_blocks`).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from tam.analysis.geometry import effective_rank, key_factors, logit_spread, rank_correlation, row_entropy
from tam.analysis.maps import MAX_ELEMENTS, QUERY_BLOCK, has_spatial_map, key_support, map_blocks
from tam.layers import AttentionBlock, kind_of


@torch.no_grad()
def received_weights(
    block: AttentionBlock, x: Tensor, *, query_block: int = QUERY_BLOCK, max_elements: int = MAX_ELEMENTS
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The mean weight each key receives over all queries, the mean row entropy (:func:`row_entropy`) and,
    for softmax maps, the mean logit spread (:func:`logit_spread`; None for ``scale`` maps).

    Shape:
        x: ``[B, C, *S]`` -> received ``[B, h, N_keys]``, entropy ``[B, h]``, spread ``[B, h]`` or None.
    """
    spatial = tuple(x.shape[2:])
    support = key_support(block, spatial)
    softmax = getattr(block, "normalization", "softmax") == "softmax"
    received = entropy = spread = None
    for images, _, weights in map_blocks(block, x, query_block=query_block, max_elements=max_elements):
        if received is None:
            received = weights.new_zeros(x.shape[0], block.heads, weights.shape[-1])
            entropy = weights.new_zeros(x.shape[0], block.heads)
            spread = weights.new_zeros(x.shape[0], block.heads) if softmax else None
        received[images] += weights.sum(-2)
        entropy[images] += row_entropy(weights, support).sum(-1)
        if softmax:
            spread[images] += logit_spread(weights).sum(-1)
    n = math.prod(spatial)
    return received / n, entropy / n, None if spread is None else spread / n


@dataclasses.dataclass
class BlockStatistics:
    """What one attention block did on a batch. Tensors are per image and head; ``None`` where not defined
    (no spatial map for TAM ``softmax``; no ``d×d`` map for Non-local and Criss-cross).

    Attributes:
        received: mean weight each key receives, ``[B, h, N_keys]``.
        magnitude, alignment: ``|k_j|`` and ``cos∠(k_j, q̂)`` of the same keys (:func:`key_factors`).
        entropy: mean row entropy as a fraction of ``log(keys a query sees)``, ``[B, h]``.
        logit_spread: mean over rows of the std of a softmax row's logits, ``[B, h]`` (None for ``scale``).
        singular_values: of TAM's ``M`` per head, descending, ``[B, h, d]``.
    """

    name: str
    kind: str
    normalization: str
    geometry: str
    heads: int
    head_channels: int
    spatial: tuple[int, ...]
    received: Tensor | None = None
    magnitude: Tensor | None = None
    alignment: Tensor | None = None
    entropy: Tensor | None = None
    logit_spread: Tensor | None = None
    singular_values: Tensor | None = None

    def cpu(self) -> BlockStatistics:
        """The same statistics with every tensor on the CPU (for drawing)."""
        tensors = ("received", "magnitude", "alignment", "entropy", "logit_spread", "singular_values")
        return dataclasses.replace(self, **{f: getattr(self, f).cpu() for f in tensors if getattr(self, f) is not None})

    def magnitude_correlation(self) -> Tensor:
        """Spearman ρ of received weight with ``|k|``, per image and head, ``[B, h]``."""
        return rank_correlation(self.received, self.magnitude)

    def direction_correlation(self) -> Tensor:
        """Spearman ρ of received weight with ``cos∠(k, q̂)``, per image and head, ``[B, h]``."""
        return rank_correlation(self.received, self.alignment)

    def factor_correlation(self) -> Tensor:
        """Spearman ρ of ``|k|`` with ``cos∠(k, q̂)`` over the keys, per image and head, ``[B, h]``.

        Near ±1 the two factors rank the keys alike, and ρ(received, ``|k|``) cannot be told from
        ±ρ(received, cos): a weight that follows one also seems to follow the other.
        """
        return rank_correlation(self.magnitude, self.alignment)

    def summary(self) -> dict:
        """Plain numbers for ``analysis.json``: each statistic's mean and per-head means over the images."""
        out = {field: getattr(self, field) for field in
               ("name", "kind", "normalization", "geometry", "heads", "head_channels")}
        out["spatial"] = list(self.spatial)
        if self.received is not None:
            out["keys"] = self.received.shape[-1]
            out["magnitude_correlation"] = _per_head(self.magnitude_correlation())
            out["direction_correlation"] = _per_head(self.direction_correlation())
            out["factor_correlation"] = _per_head(self.factor_correlation())
            out["row_entropy"] = _per_head(self.entropy)
        if self.logit_spread is not None:
            out["logit_spread"] = _per_head(self.logit_spread)
        if self.singular_values is not None:
            out["effective_rank"] = _per_head(effective_rank(self.singular_values))
            out["singular_values"] = [[round(v, 6) for v in head] for head in self.singular_values.mean(0).tolist()]
        return out


def _per_head(values: Tensor) -> dict:
    per_head = values.double().mean(0)
    return {"mean": round(per_head.mean().item(), 4), "per_head": [round(v, 4) for v in per_head.tolist()]}


@torch.no_grad()
def block_statistics(
    name: str, block: AttentionBlock, x: Tensor, *, query_block: int = QUERY_BLOCK, max_elements: int = MAX_ELEMENTS
) -> BlockStatistics:
    """Measure ``block`` on its input ``x`` (``[B, C, *S]``): see :class:`BlockStatistics`."""
    stats = BlockStatistics(
        name=name, kind=kind_of(block), normalization=getattr(block, "normalization", "softmax"),
        geometry=block.geometry, heads=block.heads, head_channels=block.head_channels, spatial=tuple(x.shape[2:]),
    )
    if has_spatial_map(block):
        blocking = dict(query_block=query_block, max_elements=max_elements)
        stats.received, stats.entropy, stats.logit_spread = received_weights(block, x, **blocking)
        stats.magnitude, stats.alignment = key_factors(block, x)
    if hasattr(block, "transposed_map"):  # TAM and the linear family's d×d maps
        stats.singular_values = torch.linalg.svdvals(block.transposed_map(x).double())
    return stats
