"""Matrix products in the layout their consumers read: weights broadcast over the batch, channels_last
outputs, scales applied on the accumulator, sums over the positions kept finite in half precision."""

from __future__ import annotations

import torch
from torch import Tensor

HALF_DTYPES = (torch.float16, torch.bfloat16)


def weight_matmul(weight: Tensor, t: Tensor, *, channels_last: bool = False) -> Tensor:
    """``weight @ t[b]`` for every sample, as one ``bmm`` with a 2-D weight broadcast over the batch.

    ``torch.matmul(weight, t)`` with a 2-D ``weight`` folds the batch into one ``mm`` and then copies the
    transposed product into place; the broadcast form writes it where it belongs. With ``channels_last``
    the product is written channel-innermost (``t[b]ᵀ weightᵀ``, returned as its ``[B, O, N]`` view): the
    layout of a flattened ``channels_last`` feature map, so BN and the residual sum read it in order. Its
    backward returns the gradient of ``t`` in the layout of ``t``, where autograd would write it
    channel-innermost too and the layer before would have to copy it. In half precision (or under autocast
    to it) the weight's gradient, a sum over the ``N`` positions, is formed by :func:`position_sum`, which
    keeps it finite; float32 and float64 products without ``channels_last`` are left to autograd.

    Shape:
        weight: ``[O, I]`` or per sample ``[B, O, I]``, t: ``[B, I, N]`` -> ``[B, O, N]``
    """
    if channels_last or compute_dtype(t) in HALF_DTYPES:
        return _WeightMatmul.apply(weight, t, channels_last)
    return product_in_layout(weight, t, channels_last=False)


def product_in_layout(weight: Tensor, t: Tensor, channels_last: bool) -> Tensor:
    """:func:`weight_matmul` without autograd bookkeeping, for autograd Functions that write their own backward."""
    if channels_last:
        return torch.matmul(t.transpose(-1, -2), weight.expand(t.shape[0], -1, -1).transpose(-1, -2)).transpose(-1, -2)
    return torch.matmul(weight.expand(t.shape[0], -1, -1), t)


class _WeightMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight: Tensor, t: Tensor, channels_last: bool) -> Tensor:
        ctx.save_for_backward(weight, t)
        return product_in_layout(weight, t, channels_last=channels_last)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        weight, t = ctx.saved_tensors
        grad_weight = grad_t = None
        if ctx.needs_input_grad[0]:
            grad_weight = position_sum(grad, t.to(grad.dtype))  # [B, O, I]
            grad_weight = (grad_weight.sum(0) if weight.dim() == 2 else grad_weight).to(weight.dtype)
        if ctx.needs_input_grad[1]:
            w_t = weight.to(grad.dtype).transpose(-1, -2)
            grad_t = weight_matmul(w_t, grad, channels_last=is_channels_last(t)).to(t.dtype)
        return grad_weight, grad_t, None


def is_channels_last(t: Tensor) -> bool:
    """Whether ``[B, C, N]`` keeps its channels innermost, as a flattened ``channels_last`` map does."""
    return t.stride(1) < t.stride(2)


def scaled_bmm(a: Tensor, b: Tensor, scale: float) -> Tensor:
    """``scale · (a @ b)`` with the scale applied to the accumulator before the result is stored.

    Half-precision inputs then never store the unscaled product (which can overflow fp16 where the scaled
    one fits), and no pass over ``a`` or ``b`` is spent on scaling them.

    Shape:
        a: ``[B, M, K]``, b: ``[B, K, N]`` -> ``[B, M, N]``
    """
    return torch.baddbmm(a.new_zeros(()), a, b, beta=0, alpha=scale)


def position_sum(a: Tensor, b: Tensor) -> Tensor:
    """``Σ_n a[:, :, n] b[:, :, n]ᵀ``, the sum over the ``N`` positions, in at least float32.

    Such sums (a weight's gradient ``dy xᵀ``, the gradient of a ``C×C`` map) grow with ``N`` and pass
    float16's range at realistic sizes while every term fits. float16 inputs form the *mean* (the scale on
    the accumulator, :func:`scaled_bmm`), widen it to float32 and multiply by ``N`` there: the window of
    sums float16 holds moves up by ``N``, where a gradient scaler (which keeps every term in range) puts
    them. bfloat16 has float32's range: its plain product is widened; float32 and float64 take the plain
    product.

    Shape:
        a: ``[B, M, N]``, b: ``[B, K, N]`` -> ``[B, M, K]``, float32 for half-precision inputs

    Example:
        >>> a = torch.full((1, 1, 4096), 200.0, dtype=torch.float16)
        >>> position_sum(a, a).item()  # 4096 · 200², past float16's 65504
        163840000.0
    """
    if a.dtype == torch.float16:
        n = a.shape[-1]
        return scaled_bmm(a, b.transpose(-1, -2), 1 / n).float().mul_(n)
    product = torch.matmul(a, b.transpose(-1, -2))
    return product.float() if a.dtype in HALF_DTYPES else product


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype ``x``'s products run in: the autocast dtype where autocast is on for its device, else its own."""
    kind = x.device.type
    if kind in ("cpu", "cuda") and torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return x.dtype


def wide_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype in which maps free of ``N`` are formed for inputs of ``dtype``: float32 for half precision."""
    return torch.promote_types(dtype, torch.float32)
