"""Cross-covariance attention (XCA, XCiT) on the shared shell, with its Gram form."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tam.functional import (
    check_choice,
    cross_covariance_attention,
    cross_covariance_map,
    gram_cross_covariance_attention,
    xca_gram_macs,
)
from tam.layers.shell import AttentionBlock
from tam.layers.transposed import GramForms

GEOMETRIES = ("full", "direction")


class CrossCovarianceAttention(GramForms, AttentionBlock):
    """XCA: ``a = softmax_rows(τ_h · q̂ k̂ᵀ) v`` per head, with q and k normalised over the positions.

    El-Nouby et al., "XCiT: Cross-Covariance Image Transformers", NeurIPS 2021; source
    ``facebookresearch/xcit``, ``xcit.py``, class ``XCA`` (``temperature`` a per-head parameter, init 1).
    Restormer's MDTA is this core behind depthwise convolutions, which the shell does not add. The ``d×d``
    map mixes channels, not positions: there are no spatial weights (:meth:`attention_map` refuses; see
    :meth:`transposed_map`). ``temperature`` is excluded from weight decay (:meth:`no_weight_decay`).

    Two exact evaluations, dispatched by the rule TAM's use (:mod:`tam.layers.dispatch`): ``"transposed"``
    forms q, k, v; ``"gram"`` folds the block into ``y = x + BN(P x)`` with one ``C×C`` map per sample
    (:func:`~tam.functional.gram_cross_covariance_attention`; ``full`` geometry without positions only).

    Args:
        channels: input and output channels.
        impl: ``"auto"`` | ``"transposed"`` | ``"gram"``.
        **shell: ``heads``, ``embed_channels``, ``geometry`` (``"full"`` | ``"direction"``: ``magnitude``
            leaves one channel per head, whose 1×1 softmax is constant), ``pos_encoding``, ``init``,
            ``init_std``, ``device``, ``dtype``.

    Shape:
        x: ``[B, C, *S]`` (1 to 3 spatial dims) -> same shape.

    Example:
        >>> layer = CrossCovarianceAttention(64, heads=8)
        >>> layer(torch.randn(2, 64, 16, 16)).shape
        torch.Size([2, 64, 16, 16])
    """

    normalization = "softmax-channels"  # for analysis: a softmax over key channels, not positions

    gram_macs = staticmethod(xca_gram_macs)

    def __init__(self, channels: int, *, impl: str = "auto", **shell):
        super().__init__(channels, **shell)
        check_choice("geometry", self.geometry, GEOMETRIES)
        self._set_impl(impl)
        factory_kwargs = {"device": self.theta.weight.device, "dtype": self.theta.weight.dtype}
        self.temperature = nn.Parameter(torch.ones(self.heads, **factory_kwargs))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if hasattr(self, "temperature"):  # the shell's __init__ resets before the temperature exists
            nn.init.ones_(self.temperature)

    def no_weight_decay(self) -> set[str]:
        """Parameters that weight decay must leave alone (timm's convention): the per-head temperature."""
        return {"temperature"}

    def _mix(self, x: Tensor, spatial: tuple[int, ...]) -> Tensor:
        if self._dispatch(x, spatial) != "gram":
            return super()._mix(x, spatial)
        weights = (conv.weight.flatten(1) for conv in (self.theta, self.phi, self.g, self.z))
        return gram_cross_covariance_attention(x.flatten(2), *weights, self.temperature, heads=self.heads)

    def _core(self, q: Tensor, k: Tensor, v: Tensor, spatial: tuple[int, ...]) -> Tensor:
        return cross_covariance_attention(q, k, v, self.temperature)

    def _spatial_map(self, q: Tensor, k: Tensor, spatial: tuple[int, ...], queries: Tensor) -> Tensor:
        raise ValueError("xca mixes channels, not positions: it has no spatial weights; use transposed_map(x)")

    def transposed_map(self, x: Tensor) -> Tensor:
        """The ``d×d`` map ``A`` of every head (``a = A v``). Shape: x ``[B, C, *S]`` -> ``[B, h, d, d]``."""
        _, q, k, _ = self._project_input(x)
        return cross_covariance_map(q, k, self.temperature)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, impl={self.impl!r}"
