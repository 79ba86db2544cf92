"""Transposed attention (TAM): attention through a ``d×d`` map per head, in the transposed order."""

from __future__ import annotations

import torch
from torch import Tensor

from tam.functional.checks import NORMALIZATIONS, check_choice, check_qkv
from tam.functional.products import compute_dtype, position_sum, scaled_bmm


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
        return _scaled_product(v, k, _logit_factor(normalization, n, d, scale))
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
    replaces the factor on ``v kᵀ`` (see :func:`transposed_map`). In float16 the backward is written out
    (:class:`_HalfTransposed`): the gradient of the map, ``Σ_N da qᵀ``, passes float16's range unscaled.

    Shape:
        q, k: ``[B, h, d, N]``, v: ``[B, h, dv, N]`` -> ``[B, h, dv, N]``

    Example:
        >>> q, k, v = torch.randn(3, 2, 4, 8, 64).unbind(0)
        >>> transposed_attention(q, k, v).shape
        torch.Size([2, 4, 8, 64])
    """
    check_qkv(q, k, v, rank=4)
    if compute_dtype(q) == torch.float16:
        return _HalfTransposed.apply(q, k, v, normalization, scale)
    return _apply_map(transposed_map(k, v, normalization=normalization, scale=scale), q, normalization)


def _apply_map(m: Tensor, q: Tensor, normalization: str) -> Tensor:
    """``M q`` (``softmax``: ``M q / sqrt(d)``). Shape: m ``[B, h, dv, d]``, q ``[B, h, d, N]`` -> ``[B, h, dv, N]``."""
    a = torch.matmul(m, q)
    return a if normalization == "scale" else a * q.shape[-2] ** -0.5


def _logit_factor(normalization: str, n: int, d: int, scale: float | None) -> float:
    """The factor on ``v kᵀ`` that :func:`transposed_map` applies before its normalization."""
    if scale is not None:
        return scale
    return (n * d) ** -0.5 if normalization == "scale" else n**-0.5


class _HalfTransposed(torch.autograd.Function):
    """:func:`transposed_attention` for float16 products, with the gradient of the ``d×d`` map formed as a sum
    over the positions in float32 (:func:`~tam.functional.products.position_sum`) and carried through the
    softmax (ablation) and the factor on ``v kᵀ`` there, before ``dv = dL k`` and ``dk = dLᵀ v`` narrow it
    again (``dL``: the gradient of the scaled product). Second derivatives go through autograd's own graph of
    the forward, recomputed."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, normalization: str, scale: float | None) -> Tensor:
        m = transposed_map(k, v, normalization=normalization, scale=scale)
        ctx.save_for_backward(q, k, v, m)
        ctx.normalization, ctx.scale = normalization, scale
        return _apply_map(m, q, normalization)

    @staticmethod
    def backward(ctx, grad: Tensor):
        q, k, v, m = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: differentiate a recomputation that keeps every dependence
            wanted = [t for t, needed in zip((q, k, v), ctx.needs_input_grad[:3]) if needed]
            a = _apply_map(transposed_map(k, v, normalization=ctx.normalization, scale=ctx.scale), q, ctx.normalization)
            found = iter(torch.autograd.grad(a, wanted, grad, create_graph=True))
            return (*(next(found) if needed else None for needed in ctx.needs_input_grad[:3]), None, None)
        dtype = grad.dtype
        n, d = k.shape[-1], k.shape[-2]
        q, k, v = (t.to(dtype) for t in (q, k, v))
        d_map = position_sum(grad.flatten(0, -3), q.flatten(0, -3)).unflatten(0, grad.shape[:-2])  # [B, h, dv, d]
        if ctx.normalization == "scale":
            d_logits = d_map
            d_q = torch.matmul(m.to(dtype).transpose(-1, -2), grad)
        else:  # a = softmax(L) q / sqrt(d): back through the row softmax in float32, where d_map lives
            weights = m.float()
            d_weights = d_map * d**-0.5
            d_logits = weights * (d_weights - (d_weights * weights).sum(-1, keepdim=True))
            d_q = torch.matmul((weights * d**-0.5).to(dtype).transpose(-1, -2), grad)
        scaled = (d_logits * _logit_factor(ctx.normalization, n, d, ctx.scale)).to(dtype)
        d_v = torch.matmul(scaled, k)  # [B, h, dv, N]
        d_k = torch.matmul(scaled.transpose(-1, -2), v)  # [B, h, d, N]
        return d_q, d_k, d_v, None, None


def transposed_macs(n: int, channels: int, embed: int, heads: int) -> int:
    """Multiply-accumulates per sample of the block in transposed order: projections, core, output."""
    return n * (4 * embed * channels + 2 * embed * embed // heads)
