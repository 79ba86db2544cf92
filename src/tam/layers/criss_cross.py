"""Criss-cross attention (CCNet, ICCV 2019) on the shared shell."""

from __future__ import annotations

from torch import Tensor

from tam.functional import criss_cross_attention, criss_cross_map
from tam.layers.shell import AttentionBlock, check_int


class CrissCross(AttentionBlock):
    """Criss-cross attention: each position attends over its row and column; ``recurrence`` passes.

    The whole block (shared weights) is applied ``recurrence`` times, so information reaches every
    position after two passes. 2-D inputs only.

    Args:
        channels: input and output channels.
        recurrence: number of passes R ≥ 1 (2 in CCNet).
        **shell: ``heads``, ``embed_channels``, ``pos_encoding``, ``init``, ``init_std``,
            ``device``, ``dtype``.

    Shape:
        x: ``[B, C, H, W]`` -> same shape.

    Example:
        >>> layer = CrissCross(64)
        >>> layer(torch.randn(2, 64, 16, 16)).shape
        torch.Size([2, 64, 16, 16])
    """

    spatial_ranks = (2,)

    def __init__(self, channels: int, *, recurrence: int = 2, **shell):
        if "geometry" in shell:
            raise TypeError("CrissCross has no geometry option (its softmax sees q·k as it is)")
        super().__init__(channels, **shell)
        self.recurrence = check_int("recurrence", recurrence, 1)

    def forward(self, x: Tensor) -> Tensor:
        spatial = self._check_input(x)
        x = self._input_positions(x, spatial)  # once: the passes are one block
        for _ in range(self.recurrence):
            x = self._step(x, spatial)
        return x

    def block_macs(self, spatial: tuple[int, ...]) -> int:
        """The shell and the core, ``recurrence`` times."""
        return self.recurrence * super().block_macs(spatial)

    def core_macs(self, spatial: tuple[int, ...]) -> int:
        """Each position over its row and column: ``2·N·(H+W−1)·E``."""
        height, width = spatial
        return 2 * height * width * (height + width - 1) * self.embed_channels

    def _core(self, q: Tensor, k: Tensor, v: Tensor, spatial: tuple[int, ...]) -> Tensor:
        return criss_cross_attention(q.unflatten(-1, spatial), k.unflatten(-1, spatial), v.unflatten(-1, spatial))

    def _spatial_map(self, q: Tensor, k: Tensor, spatial: tuple[int, ...], queries: Tensor) -> Tensor:
        """Weights of the first pass (later passes see the first pass's output)."""
        return criss_cross_map(q.unflatten(-1, spatial), k.unflatten(-1, spatial), queries)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, recurrence={self.recurrence}"
