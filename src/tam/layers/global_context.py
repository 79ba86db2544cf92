"""Global context (GCNet) on the shared shell: query-independent attention."""

from __future__ import annotations

import math

from torch import Tensor

from tam.functional import global_context_attention, global_context_map
from tam.layers.shell import AttentionBlock


class GlobalContext(AttentionBlock):
    """Global context: ``a = Σ_j softmax_j(l_j) v_j`` for every position, ``l_j = Σ_c k_cj`` per head.

    Cao, Xu, Lin, Wei, Hu, "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond", ICCVW
    2019; source ``xvjiarui/GCNet``, ``mmdet/ops/gcb/context_block.py`` (``spatial_pool`` with
    ``pooling_type='att'``). The attention does not depend on the query — the limit the thesis's magnitude
    analysis points at. Differences from GCNet: one logit per head, from the shell's key projection (summed
    over the head's channels); and the shell's ``x + BN(Wz a)`` replaces GCNet's transform ``Wv2 ReLU(LN(Wv1
    ·))``. The query projection Wθ has no role: it is kept, frozen (``requires_grad=False``), so state dicts
    load across kinds and distributed training sees no unused trainable parameter. Cost ``N·E``.

    Args:
        channels: input and output channels.
        **shell: ``heads``, ``embed_channels``, ``geometry`` (applied to the keys), ``pos_encoding``, ``init``,
            ``init_std``, ``device``, ``dtype``.

    Shape:
        x: ``[B, C, *S]`` (1 to 3 spatial dims) -> same shape.

    Example:
        >>> layer = GlobalContext(64, heads=8)
        >>> layer(torch.randn(2, 64, 16, 16)).shape
        torch.Size([2, 64, 16, 16])
    """

    normalization = "softmax"  # for analysis: a softmax over positions of one logit each

    def __init__(self, channels: int, **shell):
        super().__init__(channels, **shell)
        self.theta.weight.requires_grad_(False)

    def core_macs(self, spatial: tuple[int, ...]) -> int:
        """The softmax-weighted sum of the values: ``N·E``."""
        return math.prod(spatial) * self.embed_channels

    def _core(self, q: Tensor, k: Tensor, v: Tensor, spatial: tuple[int, ...]) -> Tensor:
        return global_context_attention(k, v)

    def _spatial_map(self, q: Tensor, k: Tensor, spatial: tuple[int, ...], queries: Tensor) -> Tensor:
        return global_context_map(k, len(queries))
