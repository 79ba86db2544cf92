"""Efficient Attention (Shen et al., WACV 2021) on the shared shell."""

from __future__ import annotations

import math

from torch import Tensor

from tam.functional import check_choice, efficient_attention, efficient_context, efficient_map
from tam.layers.shell import AttentionBlock

GEOMETRIES = ("full", "direction")


class EfficientAttention(AttentionBlock):
    """Efficient Attention: ``a = Gᵀ ρ_q(q)``, ``G = ρ_k(k) vᵀ``; softmax over channels for q, positions for k.

    Shen, Zhang, Zhao, Yi, Li, "Efficient Attention: Attention with Linear Complexities", WACV 2021; source
    ``cmsflash/efficient-attention``, ``efficient_attention.py``. Its implied spatial weights are
    ``ρ_q(q_i)·ρ_k(k_j)`` (:meth:`attention_map`); cost ``2·N·E²/h``.

    Args:
        channels: input and output channels.
        **shell: ``heads``, ``embed_channels``, ``geometry`` (``"full"`` | ``"direction"``: ``magnitude``
            leaves one channel per head, whose softmax over channels is constant), ``pos_encoding``,
            ``init``, ``init_std``, ``device``, ``dtype``.

    Shape:
        x: ``[B, C, *S]`` (1 to 3 spatial dims) -> same shape.

    Example:
        >>> layer = EfficientAttention(64, heads=8)
        >>> layer(torch.randn(2, 64, 16, 16)).shape
        torch.Size([2, 64, 16, 16])
    """

    normalization = "softmax-factored"  # for analysis: a product of two softmaxes, no logits

    def __init__(self, channels: int, **shell):
        super().__init__(channels, **shell)
        check_choice("geometry", self.geometry, GEOMETRIES)

    def core_macs(self, spatial: tuple[int, ...]) -> int:
        """``G = ρ_k(k) vᵀ`` and ``Gᵀ ρ_q(q)``: ``2·N·E²/h``."""
        return 2 * math.prod(spatial) * self.embed_channels * self.head_channels

    def _core(self, q: Tensor, k: Tensor, v: Tensor, spatial: tuple[int, ...]) -> Tensor:
        return efficient_attention(q, k, v)

    def _spatial_map(self, q: Tensor, k: Tensor, spatial: tuple[int, ...], queries: Tensor) -> Tensor:
        return efficient_map(q[..., queries], k)

    def transposed_map(self, x: Tensor) -> Tensor:
        """The map ``Gᵀ`` of every head (``a = Gᵀ ρ_q(q)``). Shape: x ``[B, C, *S]`` -> ``[B, h, d, d]``."""
        _, _, k, v = self._project_input(x)
        return efficient_context(k, v).transpose(-1, -2)
