"""Transposed attention (TAM): attention through a ``d×d`` map per head, in the transposed order."""

from __future__ import annotations

import torch
from torch import Tensor

from tam.functional.checks import NORMALIZATIONS, check_choice, check_qkv
from tam.functional.products import scaled_bmm


def transposed_map(k: Tensor, v: Tensor, *, normalization: str = "scale") -> Tensor:
    """The ``d×d`` map of transposed attention: ``s·v kᵀ`` or ``softmax_rows(v kᵀ / sqrt(N))``.

    The scale rides on the product's accumulator (:func:`scaled_bmm`): half-precision inputs never store
    the unscaled ``v kᵀ`` (it overflows fp16 at realistic sizes).

    Shape:
        k: ``[B, h, d, N]``, v: ``[B, h, dv, N]`` -> ``[B, h, dv, d]``
    """
    check_choice("normalization", normalization, NORMALIZATIONS)
    n, d = k.shape[-1], k.shape[-2]
    scale = (n * d) ** -0.5 if normalization == "scale" else n**-0.5
    m = scaled_bmm(v.flatten(0, -3), k.flatten(0, -3).transpose(-1, -2), scale).unflatten(0, v.shape[:-2])
    return m if normalization == "scale" else torch.softmax(m, dim=-1)


def transposed_attention(q: Tensor, k: Tensor, v: Tensor, *, normalization: str = "scale") -> Tensor:
    """Transposed attention: ``a = M q`` with the ``d×d`` map ``M`` of :func:`transposed_map`.

    With ``normalization="scale"`` this is exactly Non-local ``scale`` attention, ``s·Σ_j (q_i·k_j) v_j``,
    evaluated as ``(v kᵀ) q`` instead of ``v (kᵀ q)``: cost ``2·N·d·dv`` per head, no ``N×N`` tensor.
    ``softmax`` is the ablation of the thesis: ``a = softmax_rows(v kᵀ / sqrt(N)) q / sqrt(d)``.

    Shape:
        q, k: ``[B, h, d, N]``, v: ``[B, h, dv, N]`` -> ``[B, h, dv, N]``

    Example:
        >>> q, k, v = torch.randn(3, 2, 4, 8, 64).unbind(0)
        >>> transposed_attention(q, k, v).shape
        torch.Size([2, 4, 8, 64])
    """
    check_qkv(q, k, v, rank=4)
    m = transposed_map(k, v, normalization=normalization)
    a = torch.matmul(m, q)
    return a if normalization == "scale" else a * q.shape[-2] ** -0.5


def transposed_macs(n: int, channels: int, embed: int, heads: int) -> int:
    """Multiply-accumulates per sample of the block in transposed order: projections, core, output."""
    return n * (4 * embed * channels + 2 * embed * embed // heads)
