"""Transposed Attention Module (TAM): attention through a d×d map, never an N×N one."""

from __future__ import annotations

import math

from torch import Tensor

from tam.functional import (
    NORMALIZATIONS,
    check_choice,
    gram_macs,
    gram_transposed_attention,
    non_local_map,
    transposed_attention,
    transposed_macs,
    transposed_map,
)
from tam.layers.shell import AttentionBlock


IMPLS = ("auto", "transposed", "gram")


# Time to stream one element through memory, in multiply-accumulates of a large matmul: elementwise and
# layout work runs at memory bandwidth, matmuls at compute speed. Calibrated on this project's CPU (C = 64,
# 128, 256 at 8², 16², 32²; 1, 8, 16 heads; batch 8, channels_last, forward+backward from a dense output
# gradient, the two forms timed alternately): every value from 48 to 128 ranks all 27 shapes as measured,
# 32 (fitted earlier, on gradients seeded by ``y.sum()``) misranks seven.
WRITE_COST = 64


def evaluation_costs(n: int, channels: int, embed: int, heads: int) -> tuple[int, int]:
    """Cost per sample of the transposed order and of the Gram form: MACs plus weighted elements written.

    Per position, the transposed order streams q, k, v, ``a`` and ``Wz a`` forward and their gradients
    backward (counted ``6E + C``); the Gram form streams ``M x`` and the gradient of ``x`` (counted ``2C``),
    but pays ``C×C`` work per sample, which loses on small maps with many channels. The counts are the
    calibrated proxies of the benchmark above, not exact byte counts.
    """
    transposed = transposed_macs(n, channels, embed, heads) + WRITE_COST * n * (6 * embed + channels)
    gram = gram_macs(n, channels, embed, heads) + WRITE_COST * n * 2 * channels
    return transposed, gram


class TransposedAttention(AttentionBlock):
    """Spatial attention evaluated in the transposed order: ``a = (s·v kᵀ) q``.

    With ``normalization="scale"`` (the proposal) this is the same function as :class:`NonLocal` with
    ``normalization="scale"``, at cost ``2·N·E²/h`` instead of ``2·N²·E``: cheaper as heads grow. The
    ``"softmax"`` ablation normalises the rows of the ``d×d`` map instead.

    Two exact evaluations: ``"transposed"`` forms q, k, v and the ``d×d`` maps; ``"gram"`` folds the whole
    block into one ``C×C`` map per sample through ``x xᵀ`` (cost independent of heads; ``full`` geometry
    without positional encoding only). ``"auto"`` takes the cheaper by :func:`evaluation_costs`.

    Args:
        channels: input and output channels.
        normalization: ``"scale"`` | ``"softmax"``.
        impl: ``"auto"`` | ``"transposed"`` | ``"gram"``.
        **shell: ``heads``, ``embed_channels``, ``geometry``, ``pos_encoding``, ``init``, ``init_std``,
            ``device``, ``dtype``
            (see :class:`~tam.layers.shell.AttentionBlock`).

    Shape:
        x: ``[B, C, *S]`` (1 to 3 spatial dims) -> same shape.

    Example:
        >>> layer = TransposedAttention(64, heads=8)
        >>> layer(torch.randn(2, 64, 16, 16)).shape
        torch.Size([2, 64, 16, 16])
    """

    def __init__(self, channels: int, *, normalization: str = "scale", impl: str = "auto", **shell):
        super().__init__(channels, **shell)
        check_choice("normalization", normalization, NORMALIZATIONS)
        check_choice("impl", impl, IMPLS)
        self.gram_applies = self.geometry == "full" and self.pos_encoding is None
        if impl == "gram" and not self.gram_applies:
            raise ValueError("impl='gram' needs geometry='full' and pos_encoding=None; use impl='auto'")
        self.impl = impl
        if normalization == "softmax" and (self.head_channels == 1 or self.geometry == "magnitude"):
            raise ValueError(
                "TransposedAttention with normalization='softmax' needs keys of width ≥ 2 (a softmax over one "
                "entry is constant and leaves Wφ without gradient): use heads < embed_channels and "
                "geometry 'full' or 'direction'"
            )
        self.normalization = normalization

    def uses_gram(self, spatial: tuple[int, ...]) -> bool:
        """The dispatch rule: Gram form where it applies and :func:`evaluation_costs` says it is cheaper."""
        if self.impl != "auto":
            return self.impl == "gram"
        transposed, gram = evaluation_costs(math.prod(spatial), self.channels, self.embed_channels, self.heads)
        return self.gram_applies and gram < transposed

    def block_macs(self, spatial: tuple[int, ...]) -> int:
        """The count of the form the dispatch takes at ``spatial`` (:func:`transposed_macs` or :func:`gram_macs`)."""
        macs = gram_macs if self.uses_gram(spatial) else transposed_macs
        return macs(math.prod(spatial), self.channels, self.embed_channels, self.heads)

    def _mix(self, x: Tensor, spatial: tuple[int, ...]) -> Tensor:
        if not self.uses_gram(spatial):
            return super()._mix(x, spatial)
        weights = (conv.weight.flatten(1) for conv in (self.theta, self.phi, self.g, self.z))
        return gram_transposed_attention(x.flatten(2), *weights, heads=self.heads, normalization=self.normalization)

    def _core(self, q: Tensor, k: Tensor, v: Tensor, spatial: tuple[int, ...]) -> Tensor:
        return transposed_attention(q, k, v, normalization=self.normalization)

    def _spatial_map(self, q: Tensor, k: Tensor, spatial: tuple[int, ...], queries: Tensor) -> Tensor:
        if self.normalization != "scale":
            raise ValueError(
                "implied spatial weights exist only for normalization='scale'; for 'softmax' use transposed_map(x)"
            )
        return non_local_map(q[..., queries], k, normalization="scale")

    def transposed_map(self, x: Tensor) -> Tensor:
        """The ``d×d`` map ``M`` of every head. Shape: x ``[B, C, *S]`` -> ``[B, h, d, d]``."""
        spatial = self._check_input(x)
        _, k, v = self._project(x, spatial)
        return transposed_map(k, v, normalization=self.normalization)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, normalization={self.normalization!r}, impl={self.impl!r}"
