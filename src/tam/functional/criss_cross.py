"""Criss-cross attention (CCNet, Huang et al., ICCV 2019): each position over its row and column."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tam.functional.checks import check_qkv


def _criss_cross_weights(q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    """Softmax weights of each position over its row and its column (itself counted once, in the row).

    Shape:
        q, k: ``[B, h, d, H, W]`` -> row weights ``[B, h, H, W, W]``, column weights ``[B, h, H, W, H]``
    """
    height, width = q.shape[-2:]
    row = torch.einsum("bhcij,bhciw->bhijw", q, k)
    col = torch.einsum("bhcij,bhcuj->bhiju", q, k)
    itself = torch.eye(height, dtype=torch.bool, device=q.device).unsqueeze(1)  # [i, 1, u]: u == i
    col = col.masked_fill(itself, float("-inf"))
    weights = torch.softmax(torch.cat([row, col], dim=-1), dim=-1)
    return weights.split([width, height], dim=-1)


def criss_cross_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Criss-cross attention (CCNet): each position attends over its own row and column.

    ``a_ij = Σ_{p ∈ row(i) ∪ col(j)} softmax_p(q_ij·k_p) v_p``, the position itself counted once.
    Cost ``2·N·(H+W−1)·d`` per head; memory ``N·(H+W)`` per head, never ``N×N``.

    Shape:
        q, k: ``[B, h, d, H, W]``, v: ``[B, h, dv, H, W]`` -> ``[B, h, dv, H, W]``
    """
    check_qkv(q, k, v, rank=5)
    row, col = _criss_cross_weights(q, k)
    return torch.einsum("bhijw,bhciw->bhcij", row, v) + torch.einsum("bhiju,bhcuj->bhcij", col, v)


def criss_cross_map(q: Tensor, k: Tensor, queries: Tensor) -> Tensor:
    """Criss-cross weights of the chosen query positions over the whole grid (zero off the cross).

    Shape:
        q, k: ``[B, h, d, H, W]``, queries: ``[Q]`` flat indices -> ``[B, h, Q, H·W]``
    """
    height, width = q.shape[-2:]
    row, col = _criss_cross_weights(q, k)
    qi, qj = queries // width, queries % width
    row, col = row[:, :, qi, qj], col[:, :, qi, qj]  # [B, h, Q, W], [B, h, Q, H]
    on_row = F.one_hot(qi, height).to(row.dtype)  # [Q, H]
    on_col = F.one_hot(qj, width).to(row.dtype)  # [Q, W]
    grid = row.unsqueeze(-2) * on_row.unsqueeze(-1) + col.unsqueeze(-1) * on_col.unsqueeze(-2)
    return grid.flatten(-2)
