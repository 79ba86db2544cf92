"""Analytic forward FLOPs of the attention blocks (DESIGN §1), to cross-check the counted ones.

Per block and sample, with ``N = side²``, ``E = channels // 2`` and ``h`` heads, in multiply-adds (MACs):

    shell (every kind)   4·N·C·E          Wθ, Wφ, Wg (C→E) and Wz (E→C)
    tam core             2·N·E²/h         M = v kᵀ and a = M q, each N·d² per head
    nl / nl_sdpa core    2·N²·E           q kᵀ and w v, each N²·d per head
    cc core              2·N·(H+W−1)·E    each position over its row and column; the block runs R = 2 times
    floor core           0

TAM has a second exact evaluation, the Gram form (no shell, no q/k/v): ``2·N·C² + 2·E·C·(C + d)``; its
count is the one of the form the layer's dispatch picks at that size (``TransposedAttention.uses_gram``).

FLOPs are 2·MACs, times batch and blocks. Like ``FlopCounterMode``, the count leaves out elementwise work
(softmax, BatchNorm, the residual add), which is O(N·C) or, for Non-local's softmax, O(h·N²).
"""

from __future__ import annotations

from tam.bench.suites import KINDS, Case
from tam.functional import gram_macs, transposed_macs
from tam.layers import TransposedAttention

CRISS_CROSS_RECURRENCE = 2  # CCNet's default, the one tam.create_attention("cc") uses


def analytic_flops(case: Case) -> int | None:
    """Forward FLOPs of the blocks of ``case`` from the formulas above; ``None`` for a whole network.

    Example:
        >>> analytic_flops(Case("heads", "nl", heads=8, side=32, channels=64, batch=1))  # 2·(4·N·C·E + 2·N²·E)
        150994944
    """
    if case.model is not None:
        return None
    if case.kind not in KINDS:
        raise ValueError(f"kind must be one of {tuple(KINDS)}, got {case.kind!r}")
    n, c, e = case.side * case.side, case.channels, case.embed_channels
    if case.kind == "tam":
        gram = TransposedAttention(c, heads=case.heads).uses_gram((case.side, case.side))
        macs = (gram_macs if gram else transposed_macs)(n, c, e, case.heads)
        return 2 * case.batch * case.blocks * macs
    core = {
        "nl": 2 * n * n * e,
        "nl_sdpa": 2 * n * n * e,
        "cc": 2 * n * (2 * case.side - 1) * e,
        "floor": 0,
    }[case.kind]
    passes = CRISS_CROSS_RECURRENCE if case.kind == "cc" else 1
    return 2 * case.batch * case.blocks * passes * (4 * n * c * e + core)
