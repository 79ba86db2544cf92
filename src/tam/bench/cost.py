"""Analytic forward FLOPs of the attention blocks (DESIGN §1), to cross-check the counted ones.

Per block and sample, with ``N = side²``, ``E = channels // 2`` and ``h`` heads, in multiply-adds (MACs):

    shell (every kind)   4·N·C·E          Wθ, Wφ, Wg (C→E) and Wz (E→C)
    tam core             2·N·E²/h         M = v kᵀ and a = M q, each N·d² per head
    nl / nl_sdpa core    2·N²·E           q kᵀ and w v, each N²·d per head
    cc core              2·N·(H+W−1)·E    each position over its row and column; the block runs R = 2 times
    floor core           0

TAM has a second exact evaluation, the Gram form (no shell, no q/k/v): ``2·N·C² + 2·E·C·(C + d)``; its
count is the one of the form the layer's dispatch picks at that size on the device, in the case's dtype
(:meth:`~tam.layers.dispatch.FormDispatch.block_macs`).
Each layer states its own count (:meth:`tam.layers.AttentionBlock.block_macs`); this module multiplies it out.

FLOPs are 2·MACs, times batch and blocks. Like ``FlopCounterMode``, the count leaves out elementwise work
(softmax, BatchNorm, the residual add), which is O(N·C) or, for Non-local's softmax, O(h·N²).
"""

from __future__ import annotations

import torch

from tam.amp import AMP_DTYPES
from tam.bench.suites import Case, bench_kinds


def analytic_flops(case: Case, device: torch.device | str = "cpu") -> int | None:
    """Forward FLOPs of the blocks of ``case`` on ``device`` from the formulas above; ``None`` for a network.

    Example:
        >>> analytic_flops(Case("heads", "nl", heads=8, side=32, channels=64, batch=1))  # 2·(4·N·C·E + 2·N²·E)
        150994944
    """
    if case.model is not None:
        return None
    kinds = bench_kinds()
    if case.kind not in kinds:
        raise ValueError(f"kind must be one of {tuple(kinds)}, got {case.kind!r}")
    from tam.layers import create_attention
    from tam.layers.dispatch import FormDispatch

    kind, options = kinds[case.kind]
    layer = create_attention(kind, case.channels, heads=case.heads, **options)
    spatial = (case.side, case.side)
    if isinstance(layer, FormDispatch):
        macs = layer.block_macs(spatial, device, AMP_DTYPES[case.amp])
    else:
        macs = layer.block_macs(spatial)
    return 2 * case.batch * case.blocks * macs
