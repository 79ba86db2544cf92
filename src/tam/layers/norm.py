"""BatchNorm for ``[B, C, *S]`` inputs of any spatial rank."""

from __future__ import annotations

from torch import Tensor, nn


class BatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the channels of ``[B, C, *S]``, for 0 to 3 spatial dims alike.

    The attention blocks normalise their output in the shape (and memory layout) of their input: a
    ``channels_last`` feature map stays 4-D and ``channels_last``, which the BatchNorm kernels run several
    times faster than the flattened ``[B, C, N]`` view with channel-innermost strides that ``BatchNorm1d``
    would need. Same parameters, buffers and state-dict keys as ``nn.BatchNorm1d/2d/3d``.

    Shape:
        x: ``[B, C, *S]`` -> same shape.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input [B, C, *S] (got {input.dim()}D input)")
