"""Transposed Attention Module (TAM): attention through a d×d map, never an N×N one."""

from __future__ import annotations

from torch import Tensor

from tam.functional import NORMALIZATIONS, check_choice, non_local_map, transposed_attention, transposed_map
from tam.layers.shell import AttentionBlock


class TransposedAttention(AttentionBlock):
    """Spatial attention evaluated in the transposed order: ``a = (s·v kᵀ) q``.

    With ``normalization="scale"`` (the proposal) this is the same function as :class:`NonLocal` with
    ``normalization="scale"``, at cost ``2·N·E²/h`` instead of ``2·N²·E``: cheaper as heads grow. The
    ``"softmax"`` ablation normalises the rows of the ``d×d`` map instead.

    Args:
        channels: input and output channels.
        normalization: ``"scale"`` | ``"softmax"``.
        **shell: ``heads``, ``embed_channels``, ``geometry``, ``pos_encoding``, ``init``, ``init_std``
            (see :class:`~tam.layers.shell.AttentionBlock`).

    Shape:
        x: ``[B, C, *S]`` (1 to 3 spatial dims) -> same shape.

    Example:
        >>> layer = TransposedAttention(64, heads=8)
        >>> layer(torch.randn(2, 64, 16, 16)).shape
        torch.Size([2, 64, 16, 16])
    """

    def __init__(self, channels: int, *, normalization: str = "scale", **shell):
        super().__init__(channels, **shell)
        check_choice("normalization", normalization, NORMALIZATIONS)
        if normalization == "softmax" and (self.head_channels == 1 or self.geometry == "magnitude"):
            raise ValueError(
                "TransposedAttention with normalization='softmax' needs keys of width ≥ 2 (a softmax over one "
                "entry is constant and leaves Wφ without gradient): use heads < embed_channels and "
                "geometry 'full' or 'direction'"
            )
        self.normalization = normalization

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
        return f"{super().extra_repr()}, normalization={self.normalization!r}"
