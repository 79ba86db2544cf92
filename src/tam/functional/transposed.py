"""Transposed attention (TAM): attention through a ``d×d`` map per head, in the transposed order."""

from __future__ import annotations

import torch
from torch import Tensor

from tam.functional.checks import NORMALIZATIONS, check_choice, check_qkv
from tam.functional.products import scaled_bmm


def transposed_map(k: Tensor, v: Tensor, *, normalization: str = "scale", scale: float | None = None) -> Tensor:
    """The ``d×d`` map of transposed attention: ``s·v kᵀ`` or ``softmax_rows(v kᵀ / sqrt(N))``.

    The scale rides on the product's accumulator (:func:`scaled_bmm`): half-precision inputs never store
    the unscaled ``v kᵀ`` (it overflows fp16 at realistic sizes). Softmax logits with another ``scale`` are
    rescaled from the ``1/sqrt(N)`` product, in float32 for float16 inputs, for the same reason.

    Args:
        scale: the factor on ``v kᵀ``: ``s`` of ``scale`` (default ``1/sqrt(N·d)``), or the logits' factor of
            ``softmax`` (default ``1/sqrt(N)``; 1 leaves them unscaled).

    Shape:
        k: ``[B, h, d, N]``, v: ``[B, h, dv, N]`` -> ``[B, h, dv, d]``
    """
    check_choice("normalization", normalization, NORMALIZATIONS)
    n, d = k.shape[-1], k.shape[-2]
    if normalization == "scale":
        return _scaled_product(v, k, (n * d) ** -0.5 if scale is None else scale)
    logits = _scaled_product(v, k, n**-0.5)
    if scale is not None:
        logits = (logits.float() if logits.dtype == torch.float16 else logits) * (scale * n**0.5)
    return torch.softmax(logits, dim=-1).to(v.dtype)


def _scaled_product(v: Tensor, k: Tensor, scale: float) -> Tensor:
    """``scale · v kᵀ`` per head. Shape: k ``[B, h, d, N]``, v ``[B, h, dv, N]`` -> ``[B, h, dv, d]``."""
    return scaled_bmm(v.flatten(0, -3), k.flatten(0, -3).transpose(-1, -2), scale).unflatten(0, v.shape[:-2])


def transposed_attention(
    q: Tensor, k: Tensor, v: Tensor, *, normalization: str = "scale", scale: float | None = None
) -> Tensor:
    """Transposed attention: ``a = M q`` with the ``d×d`` map ``M`` of :func:`transposed_map`.

    With ``normalization="scale"`` this is exactly Non-local ``scale`` attention, ``s·Σ_j (q_i·k_j) v_j``,
    evaluated as ``(v kᵀ) q`` instead of ``v (kᵀ q)``: cost ``2·N·d·dv`` per head, no ``N×N`` tensor.
    ``softmax`` is the ablation of the thesis: ``a = softmax_rows(v kᵀ / sqrt(N)) q / sqrt(d)``. ``scale``
    replaces the factor on ``v kᵀ`` (see :func:`transposed_map`).

    Shape:
        q, k: ``[B, h, d, N]``, v: ``[B, h, dv, N]`` -> ``[B, h, dv, N]``

    Example:
        >>> q, k, v = torch.randn(3, 2, 4, 8, 64).unbind(0)
        >>> transposed_attention(q, k, v).shape
        torch.Size([2, 4, 8, 64])
    """
    check_qkv(q, k, v, rank=4)
    m = transposed_map(k, v, normalization=normalization, scale=scale)
    a = torch.matmul(m, q)
    return a if normalization == "scale" else a * q.shape[-2] ** -0.5


def transposed_macs(n: int, channels: int, embed: int, heads: int) -> int:
    """Multiply-accumulates per sample of the block in transposed order: projections, core, output."""
    return n * (4 * embed * channels + 2 * embed * embed // heads)
