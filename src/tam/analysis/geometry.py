"""The geometry of attention: does the weight a key receives follow its magnitude or its direction?

``q·k = |q||k|cos∠``. For every key ``j`` of a block we measure two factors from the raw projection (``full``
geometry, whatever the block's own ``geometry`` is, so that a ``direction`` block is asked about the norms it
throws away): the magnitude ``|k_j|`` and the alignment ``cos∠(k_j, q̂)`` with the mean query direction
``q̂ = mean_i q_i/|q_i|``. The weight a key receives is the mean over queries of its column of the map; rank
correlations of that weight with each factor say which one the attention follows.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor

from tam.layers import AttentionBlock

CONSTANT_RTOL = 1e-4


def average_ranks(x: Tensor) -> Tensor:
    """Ranks ``1..n`` along the last dim, tied values sharing their mean rank. Shape: ``[..., n]`` -> same, float64."""
    x = x.contiguous()
    ordered = x.sort(dim=-1).values
    below = torch.searchsorted(ordered, x, right=False)
    up_to = torch.searchsorted(ordered, x, right=True)
    return (below + up_to + 1).double() / 2


def is_constant(x: Tensor, rtol: float = CONSTANT_RTOL) -> Tensor:
    """Whether the values along the last dim spread over less than ``rtol`` of their largest magnitude.

    Shape: ``[..., n]`` -> ``[...]`` bool.
    """
    spread = x.amax(-1) - x.amin(-1)
    return spread <= rtol * x.abs().amax(-1)


def rank_correlation(x: Tensor, y: Tensor, rtol: float = CONSTANT_RTOL) -> Tensor:
    """Spearman's ρ along the last dim (ties averaged); 0 where ``x`` or ``y`` is constant (see :func:`is_constant`).

    A constant counts as following nothing, so float round-off in a flat map (e.g. the ``eps`` of the
    ``direction`` geometry) never reads as a perfect correlation.

    Shape: ``[..., n]``, ``[..., n]`` -> ``[...]`` float64.
    """
    rx, ry = average_ranks(x), average_ranks(y)
    rx = rx - rx.mean(-1, keepdim=True)
    ry = ry - ry.mean(-1, keepdim=True)
    rho = (rx * ry).sum(-1) / ((rx * rx).sum(-1) * (ry * ry).sum(-1)).sqrt().clamp_min(1e-300)
    return torch.where(is_constant(x, rtol) | is_constant(y, rtol), 0.0, rho)


def row_entropy(weights: Tensor, support: int) -> Tensor:
    """Entropy of each row of a map, as a fraction of ``log(support)`` (1 = uniform over the keys a query sees).

    Rows are read as distributions ``|w_ij| / Σ_j |w_ij|``, which is the softmax row itself and, for the signed
    ``scale`` maps, how the row spreads its (absolute) weight.

    Shape: ``[..., Q, N]`` -> ``[..., Q]``.
    """
    mass = weights.abs()
    p = mass / mass.sum(-1, keepdim=True).clamp_min(torch.finfo(mass.dtype).tiny)
    entropy = -(p * p.clamp_min(torch.finfo(p.dtype).tiny).log()).sum(-1)
    return entropy / math.log(max(support, 2))


def logit_spread(weights: Tensor) -> Tensor:
    """Standard deviation over the keys of ``log w_ij`` per row: for a softmax row, that of its logits ``τ q_i·k_j``.

    It tells the softmax's regime: with a spread well below 1, ``exp`` is nearly linear and the softmax weighs
    keys almost as the ``scale`` form does; only larger logits let it single out keys by magnitude. Zeros
    (positions off a Criss-cross row's support) are skipped.

    Shape: ``[..., Q, N]`` -> ``[..., Q]``.
    """
    seen = weights > 0
    count = seen.sum(-1).clamp_min(1)
    logs = torch.where(seen, weights.clamp_min(torch.finfo(weights.dtype).tiny).log(), 0.0)
    mean = logs.sum(-1, keepdim=True) / count.unsqueeze(-1)
    return ((torch.where(seen, logs - mean, 0.0) ** 2).sum(-1) / count).sqrt()


def effective_rank(singular_values: Tensor) -> Tensor:
    """``exp`` of the entropy of the normalised singular values: 1 for rank one, ``d`` for a flat spectrum.

    Shape: ``[..., d]`` -> ``[...]``.
    """
    p = singular_values / singular_values.sum(-1, keepdim=True).clamp_min(torch.finfo(singular_values.dtype).tiny)
    return torch.exp(-(p * p.clamp_min(torch.finfo(p.dtype).tiny).log()).sum(-1))


@contextlib.contextmanager
def _full_geometry(block: AttentionBlock) -> Iterator[None]:
    # The block's projection with geometry "full" gives the raw q and k its own geometry would transform.
    geometry = block.geometry
    block.geometry = "full"
    try:
        yield
    finally:
        block.geometry = geometry


@torch.no_grad()
def key_factors(block: AttentionBlock, x: Tensor) -> tuple[Tensor, Tensor]:
    """Magnitude ``|k_j|`` and alignment ``cos∠(k_j, q̂)`` of every key of ``block`` on input ``x``.

    Keys are the block's own (after positions and key subsampling), before its geometry.

    Shape:
        x: ``[B, C, *S]`` -> magnitude, alignment: ``[B, h, N_keys]`` each.
    """
    with _full_geometry(block):
        _, q, k, _ = block._project_input(x)
    magnitude = torch.linalg.vector_norm(k, dim=2)
    unit_queries = q / torch.linalg.vector_norm(q, dim=2, keepdim=True).clamp_min(1e-12)
    mean_direction = unit_queries.mean(-1, keepdim=True)  # [B, h, d, 1]
    mean_direction = mean_direction / torch.linalg.vector_norm(mean_direction, dim=2, keepdim=True).clamp_min(1e-12)
    alignment = (k * mean_direction).sum(2) / magnitude.clamp_min(1e-12)
    return magnitude, alignment
