"""The cost floor: the shared shell with an identity core, for benchmarks."""

from __future__ import annotations

from torch import Tensor

from tam.layers.shell import AttentionBlock


class Floor(AttentionBlock):
    """The block shell (projections, output projection, BN, residual) with ``a = v``: no attention at all.

    Not a useful layer: the yardstick that no attention kind built on the shell can cost less than.

    Shape:
        x: ``[B, C, *S]`` -> same shape.
    """

    head_major = False  # a = v is then one [E, N] matrix per sample, passed to Wz without a copy

    def _core(self, q: Tensor, k: Tensor, v: Tensor, spatial: tuple[int, ...]) -> Tensor:
        return v

    def core_macs(self, spatial: tuple[int, ...]) -> int:
        return 0

    def _spatial_map(self, q: Tensor, k: Tensor, spatial: tuple[int, ...], queries: Tensor) -> Tensor:
        raise ValueError("Floor has no attention: it is the cost floor of the shell, not an attention layer")
