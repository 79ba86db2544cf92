"""Fixed sinusoidal positional encoding for 1-D, 2-D and 3-D grids."""

from __future__ import annotations

import torch
from torch import Tensor


def sincos_table(channels: int, spatial: tuple[int, ...], *, dtype=torch.float32, device=None) -> Tensor:
    """A sinusoidal table whose channels are split across the spatial axes.

    Axis ``a`` gets a contiguous group of channels (sizes differ by at most one) filled with
    ``sin(p·ω_i), cos(p·ω_i)`` pairs, ``ω_i = 10000^(-2i/c_a)``; an odd group drops its last cosine.
    Values lie in ``[-1, 1]``.

    Shape:
        -> ``[channels, prod(spatial)]``

    Example:
        >>> sincos_table(8, (4, 5)).shape
        torch.Size([8, 20])
    """
    axes = len(spatial)
    sizes = [channels // axes + (1 if a < channels % axes else 0) for a in range(axes)]
    grids = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in spatial), indexing="ij")
    groups = []
    for size, grid in zip(sizes, grids):
        if size == 0:
            continue
        pairs = (size + 1) // 2
        omega = 10000.0 ** (-torch.arange(pairs, dtype=torch.float64) * 2 / size)
        angle = grid.reshape(1, -1) * omega.reshape(-1, 1)  # [pairs, N]
        groups.append(torch.stack([angle.sin(), angle.cos()], dim=1).reshape(2 * pairs, -1)[:size])
    return torch.cat(groups).to(dtype=dtype, device=device)


class SinCosPositions(torch.nn.Module):
    """Lazily built, cached :func:`sincos_table` for whatever spatial size arrives.

    The table is not a parameter nor a saved buffer: state dicts stay identical with and without it.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self._cache: dict[tuple, Tensor] = {}

    def forward(self, spatial: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
        """Shape: -> ``[channels, prod(spatial)]``."""
        if torch.compiler.is_compiling():
            return sincos_table(self.channels, spatial, dtype=dtype, device=device)
        key = (spatial, dtype, device)
        if key not in self._cache:
            self._cache[key] = sincos_table(self.channels, spatial, dtype=dtype, device=device)
        return self._cache[key]

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
