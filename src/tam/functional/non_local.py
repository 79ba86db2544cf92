"""Non-local attention (Wang et al., CVPR 2018): every query against every key position."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tam.functional.checks import NORMALIZATIONS, check_choice, check_qkv


NON_LOCAL_IMPLS = ("auto", "naive", "sdpa")


def non_local_map(
    q: Tensor, k: Tensor, *, normalization: str = "softmax", softmax_scale: float = 1.0, scale: float | None = None
) -> Tensor:
    """Spatial weights of Non-local attention, ``w[i, j]`` for query position ``i`` and key position ``j``.

    ``scale`` is the factor ``s`` of ``normalization="scale"`` (default ``1/sqrt(Nk·d)``).

    Shape:
        q: ``[B, h, d, Nq]``, k: ``[B, h, d, Nk]`` -> ``[B, h, Nq, Nk]``
    """
    check_choice("normalization", normalization, NORMALIZATIONS)
    logits = torch.matmul(q.transpose(-1, -2), k)
    if normalization == "softmax":
        return torch.softmax(logits * softmax_scale, dim=-1)
    return logits * ((k.shape[-1] * k.shape[-2]) ** -0.5 if scale is None else scale)


def non_local_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    normalization: str = "softmax",
    softmax_scale: float = 1.0,
    scale: float | None = None,
    impl: str = "auto",
) -> Tensor:
    """Non-local attention, ``a_i = Σ_j w(q_i, k_j) v_j`` over all key positions ``j``.

    Args:
        normalization: ``"softmax"`` (embedded Gaussian, ``w = softmax_j(τ q_i·k_j)``) or ``"scale"``
            (dot product, ``w = s·q_i·k_j``).
        softmax_scale: τ, the logit scale of ``softmax`` (1.0 as in the Non-local paper).
        scale: ``s`` of ``scale``: ``1/sqrt(Nk·d)`` by default (variance-preserving); Wang et al.'s dot product
            divides by the number of positions, ``1/Nk``.
        impl: ``"naive"`` materialises the ``[Nq, Nk]`` map; ``"sdpa"`` calls the fused
            ``scaled_dot_product_attention`` (``softmax`` only); ``"auto"`` takes ``sdpa`` for ``softmax``
            when ``q`` and ``v`` have the same width, else ``naive``. PyTorch's fused CPU kernel has no double
            backward (it raises "derivative ... is not implemented"): take ``naive`` for second derivatives.

    Shape:
        q, k: ``[B, h, d, Nq]``, ``[B, h, d, Nk]``; v: ``[B, h, dv, Nk]`` -> ``[B, h, dv, Nq]``
    """
    check_qkv(q, k, v, rank=4, same_positions=False)
    check_choice("normalization", normalization, NORMALIZATIONS)
    check_choice("impl", impl, NON_LOCAL_IMPLS)
    if impl == "sdpa" and normalization != "softmax":
        raise ValueError(f"impl='sdpa' computes normalization='softmax' only, got normalization={normalization!r}")
    if impl == "auto":
        impl = "sdpa" if normalization == "softmax" and q.shape[-2] == v.shape[-2] else "naive"
    if impl == "sdpa":
        # The fused kernels need [B, h, N, d] with a contiguous last dim; anything else runs the math fallback.
        out = F.scaled_dot_product_attention(
            q.transpose(-1, -2).contiguous(),
            k.transpose(-1, -2).contiguous(),
            v.transpose(-1, -2).contiguous(),
            scale=softmax_scale,
        )
        return out.transpose(-1, -2)
    w = non_local_map(q, k, normalization=normalization, softmax_scale=softmax_scale, scale=scale)
    return torch.matmul(v, w.transpose(-1, -2))
