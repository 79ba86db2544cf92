"""Non-local block (Wang et al., CVPR 2018) on the shared shell."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

from tam.functional import NON_LOCAL_IMPLS, NORMALIZATIONS, check_choice, non_local_attention, non_local_map
from tam.layers.dispatch import FormCost, FormDispatch
from tam.layers.shell import AttentionBlock, check_positive

_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
SCALE_DIVISORS = ("sqrt_nd", "sqrt_n", "n")


class NonLocal(FormDispatch, AttentionBlock):
    """Non-local attention: every position attends over every (optionally subsampled) position.

    Two evaluations of ``softmax``: ``"naive"`` materialises the ``N×N`` map per head; ``"sdpa"`` is PyTorch's
    fused ``scaled_dot_product_attention``, which never stores it (and has no double backward on CPU).
    ``"auto"`` chooses by the rule of :mod:`tam.layers.dispatch` (:meth:`form_costs`): the fused kernel
    wherever it applies; ``tam.force_impl("naive")`` (or ``TAM_IMPL=naive``) takes the map instead, e.g. for
    second derivatives, and ``last_dispatch`` says which ran last and why.

    Args:
        channels: input and output channels.
        normalization: ``"softmax"`` (embedded Gaussian) | ``"scale"`` (dot product, ``s = 1/sqrt(N·d)``).
        softmax_scale: τ, the logit scale of ``softmax``.
        scale_divisor: what ``scale`` divides ``q·k`` by: ``"sqrt_nd"`` (``√(N·d)``, variance-preserving: the
            same function as :class:`TransposedAttention`) | ``"sqrt_n"`` (``√N``, as the thesis code) |
            ``"n"`` (``N``, Wang et al.'s dot product). ``N`` counts the key positions.
        subsample: max-pool keys and values by 2 on every spatial axis (as in the paper); every side must be ≥ 2.
        impl: ``"naive"`` (materialises the N×N map) | ``"sdpa"`` (fused kernel; softmax only) | ``"auto"``.
        **shell: ``heads``, ``embed_channels``, ``geometry``, ``pos_encoding``, ``pos_encoding_placement``,
            ``direction_eps``, ``magnitude_scale_width``, ``init``, ``init_std``, ``device``, ``dtype``.

    Shape:
        x: ``[B, C, *S]`` (1 to 3 spatial dims) -> same shape.

    Example:
        >>> layer = NonLocal(64, heads=4)
        >>> layer(torch.randn(2, 64, 16, 16)).shape
        torch.Size([2, 64, 16, 16])
    """

    forms = ("naive", "sdpa")

    def __init__(
        self,
        channels: int,
        *,
        normalization: str = "softmax",
        softmax_scale: float = 1.0,
        scale_divisor: str = "sqrt_nd",
        subsample: bool = False,
        impl: str = "auto",
        **shell,
    ):
        super().__init__(channels, **shell)
        check_choice("normalization", normalization, NORMALIZATIONS)
        check_choice("impl", impl, NON_LOCAL_IMPLS)
        check_choice("scale_divisor", scale_divisor, SCALE_DIVISORS)
        if impl == "sdpa" and normalization != "softmax":
            raise ValueError(f"impl='sdpa' computes normalization='softmax' only, got normalization={normalization!r}")
        if not isinstance(subsample, bool):
            raise TypeError(f"subsample must be a bool, got {type(subsample).__name__} {subsample!r}")
        self.normalization = normalization
        self.softmax_scale = check_positive("softmax_scale", softmax_scale)
        self.scale_divisor = scale_divisor
        self.subsample = subsample
        self.impl = impl

    def form_costs(self, spatial: tuple[int, ...]) -> dict[str, FormCost]:
        """Both forms do the block's MACs (:meth:`AttentionBlock.block_macs`); ``naive`` streams each head's
        ``N×N_keys`` map through the logits, the softmax and the product with v (counted 4 times), ``sdpa``
        only q, k, v and its output (``E·(2N + 2N_keys)``)."""
        n, keys = math.prod(spatial), self._keys(spatial)
        macs = AttentionBlock.block_macs(self, spatial)
        return {
            "naive": FormCost(macs, 4 * self.heads * n * keys),
            "sdpa": FormCost(macs, self.embed_channels * 2 * (n + keys)),
        }

    def unavailable_forms(self) -> dict[str, str]:
        if self.normalization != "softmax":
            return {"sdpa": "the fused kernel computes normalization='softmax' only"}
        if self.geometry == "magnitude":
            return {"sdpa": "under geometry='magnitude' q and k are norms, narrower than v: the fused kernel "
                            "wants equal widths"}
        return {}

    def _subsample(self, k: Tensor, v: Tensor, batch: int, spatial: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        if not self.subsample:
            return k, v
        if min(spatial) < 2:
            raise ValueError(f"subsample=True needs every spatial side ≥ 2, got x with spatial shape {spatial}")
        pool = _MAX_POOL[len(spatial)]

        def pooled(t: Tensor) -> Tensor:
            grid = pool(t.reshape(batch, -1, *spatial), kernel_size=2, ceil_mode=True)
            return grid.reshape(batch, self.heads, t.shape[2], -1)

        return pooled(k), pooled(v)

    def _keys(self, spatial: tuple[int, ...]) -> int:
        """Key positions: ``N``, or ``N`` pooled by 2 on every axis with ``subsample``."""
        return math.prod([(side + 1) // 2 for side in spatial]) if self.subsample else math.prod(spatial)

    def core_macs(self, spatial: tuple[int, ...]) -> int:
        """``q kᵀ`` and ``w v``: ``2·N·N_keys·E``."""
        return 2 * math.prod(spatial) * self._keys(spatial) * self.embed_channels

    def _scale(self, n: int) -> float | None:
        """``s`` of ``scale`` for ``n`` keys where an option departs from the core's default, else ``None``."""
        if self.scale_divisor == "sqrt_n":
            return n**-0.5
        if self.scale_divisor == "n":
            return 1 / n
        return self._magnitude_head_scale(n)

    def _core(self, q: Tensor, k: Tensor, v: Tensor, spatial: tuple[int, ...]) -> Tensor:
        return non_local_attention(
            q, k, v, normalization=self.normalization, softmax_scale=self.softmax_scale,
            scale=self._scale(k.shape[-1]), impl=self._dispatch(q, spatial),
        )

    def _spatial_map(self, q: Tensor, k: Tensor, spatial: tuple[int, ...], queries: Tensor) -> Tensor:
        return non_local_map(
            q[..., queries], k, normalization=self.normalization, softmax_scale=self.softmax_scale,
            scale=self._scale(k.shape[-1]),
        )

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, normalization={self.normalization!r}, softmax_scale={self.softmax_scale}, "
            f"scale_divisor={self.scale_divisor!r}, subsample={self.subsample}, impl={self.impl!r}"
        )
