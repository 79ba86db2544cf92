"""BatchNorm for ``[B, C, *S]`` inputs of any spatial rank."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the channels of ``[B, C, *S]``, for 0 to 3 spatial dims alike.

    The attention blocks normalise their output in the shape (and memory layout) of their input: a
    ``channels_last`` feature map stays 4-D and ``channels_last``, which the BatchNorm kernels run several
    times faster than the flattened ``[B, C, N]`` view with channel-innermost strides that ``BatchNorm1d``
    would need. Same parameters, buffers and state-dict keys as ``nn.BatchNorm1d/2d/3d``.

    A float16 channel-innermost input on a CPU is normalised in the contiguous layout when training (and its
    output returned in the input's layout): PyTorch's CPU ``channels_last`` kernel sums over the positions in
    float16 in its backward, which overflows (inf for the whole channel) where every value and gradient
    fits; its contiguous kernel accumulates in float32.

    Shape:
        x: ``[B, C, *S]`` -> same shape.
    """

    def forward(self, x: Tensor) -> Tensor:
        if _overflows_on_backward(x) and self.training and torch.is_grad_enabled():
            return _InLayoutOf.apply(super().forward(x.contiguous()), x.detach())
        return super().forward(x)

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input [B, C, *S] (got {input.dim()}D input)")


class _InLayoutOf(torch.autograd.Function):
    """``y`` copied into the layout of ``like``; its gradient made contiguous, so that the contiguous kernel
    runs backward too (the CPU BatchNorm backward takes the ``channels_last`` kernel when either of its
    input and output gradient is channel-innermost)."""

    @staticmethod
    def forward(ctx, y: Tensor, like: Tensor) -> Tensor:
        return torch.empty_like(like).copy_(y)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad.contiguous(), None


def _overflows_on_backward(x: Tensor) -> bool:
    """Whether ``x`` takes PyTorch's CPU float16 ``channels_last`` BatchNorm backward (see :class:`BatchNorm`)."""
    return x.dtype == torch.float16 and x.device.type == "cpu" and x.dim() > 2 and x.stride(1) == 1 and x.shape[1] > 1
