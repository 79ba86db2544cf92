"""Cross-covariance attention (XCA; El-Nouby et al., "XCiT", NeurIPS 2021): a softmax over channels, not positions.

Source convention: ``facebookresearch/xcit``, ``xcit.py``, class ``XCA``: q and k are L2-normalised along the
positions (``F.normalize(q, dim=-1)`` on ``[B, h, d, N]``), ``attn = softmax(q̂ k̂ᵀ · temperature)`` with a
learned temperature per head, ``a = attn v``. Restormer's MDTA (Zamir et al., CVPR 2022) is the same core.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tam.functional.checks import check_qkv
from tam.functional.products import is_channels_last, product_in_layout, scaled_bmm

NORM_EPS = 1e-12  # F.normalize's default, as XCiT uses it


def unit_rows(t: Tensor, eps: float = NORM_EPS) -> Tensor:
    """Each row of ``t`` divided by its L2 norm over the last dim (at least ``eps``), as ``F.normalize``.

    Half precision is normalised in float32: its squares and their sum over ``N`` overflow fp16 at
    realistic sizes where the unit rows themselves are harmless.

    Shape:
        t: ``[..., N]`` -> same shape
    """
    wide = t.to(torch.promote_types(t.dtype, torch.float32))
    return (wide / wide.square().sum(-1, keepdim=True).sqrt().clamp_min(eps)).to(t.dtype)


def cross_covariance_map(q: Tensor, k: Tensor, temperature: Tensor) -> Tensor:
    """``A = softmax_rows(τ_h · q̂ k̂ᵀ)``, one ``d×d`` map per head; q̂, k̂ normalised over positions.

    Shape:
        q, k: ``[B, h, d, N]``; temperature: ``[h]`` -> ``[B, h, d, d]``
    """
    cosines = torch.matmul(unit_rows(q), unit_rows(k).transpose(-1, -2))
    return torch.softmax(cosines * temperature.to(cosines.dtype).view(-1, 1, 1), dim=-1)


def cross_covariance_attention(q: Tensor, k: Tensor, v: Tensor, temperature: Tensor) -> Tensor:
    """Cross-covariance attention: ``a = A v`` with the ``d×d`` map ``A`` of :func:`cross_covariance_map`.

    Cost ``2·N·d²`` per head; the map mixes channels, so there are no spatial weights.

    Shape:
        q, k, v: ``[B, h, d, N]``; temperature: ``[h]`` -> ``[B, h, d, N]``

    Example:
        >>> q, k, v = torch.randn(3, 2, 4, 8, 64).unbind(0)
        >>> cross_covariance_attention(q, k, v, torch.ones(4)).shape
        torch.Size([2, 4, 8, 64])
    """
    check_qkv(q, k, v, rank=4)
    if q.shape[2] != v.shape[2]:
        raise ValueError(f"cross-covariance attention needs v as wide as q: got {v.shape[2]} and {q.shape[2]}")
    return torch.matmul(cross_covariance_map(q, k, temperature), v)


def gram_cross_covariance_attention(
    x: Tensor, w_theta: Tensor, w_phi: Tensor, w_g: Tensor, w_z: Tensor, temperature: Tensor, *, heads: int
) -> Tensor:
    """``Wz · cross_covariance_attention(Wθ x, Wφ x, Wg x)`` through the Gram matrix ``G = x xᵀ / N``.

    ``q̂ k̂ᵀ = D_q Wθ G Wφᵀ D_k`` with ``‖q_c‖² / N = (Wθ G Wθᵀ)_cc`` (and so for k), so each sample's block
    is ``P x`` with ``P = Wz · blockdiag(A_h) · Wg``: cost ``2·N·C²`` plus terms free of ``N`` whatever the
    heads; q, k, v are never formed. The mean Gram (scaled on its accumulator) keeps half precision finite.
    Differentiable by autograd, second derivatives included. Valid without positional encoding and for
    ``full`` geometry.

    Shape:
        x: ``[B, C, N]``; w_theta, w_phi, w_g: ``[E, C]``; w_z: ``[C, E]``; temperature: ``[h]`` ->
        ``[B, C, N]`` in the layout of ``x``
    """
    embed, n = w_theta.shape[0], x.shape[-1]
    gram = scaled_bmm(x, x.transpose(-1, -2), 1 / n)  # [B, C, C]
    theta_gram = product_in_layout(w_theta, gram, channels_last=False)  # [B, E, C]
    phi_gram = product_in_layout(w_phi, gram, channels_last=False)
    pairs = torch.matmul(theta_gram, w_phi.transpose(0, 1))  # q kᵀ / N for every pair of embed channels
    floor = NORM_EPS / n**0.5  # max(‖q‖, eps) / sqrt(N)
    q_norm = (theta_gram * w_theta).sum(-1).clamp_min(0).sqrt().clamp_min(floor)  # ‖q_c‖ / sqrt(N): [B, E]
    k_norm = (phi_gram * w_phi).sum(-1).clamp_min(0).sqrt().clamp_min(floor)
    cosines = pairs / q_norm.unsqueeze(-1) / k_norm.unsqueeze(-2)
    head = torch.arange(embed, device=x.device) // (embed // heads)
    same_head = head.unsqueeze(1) == head.unsqueeze(0)
    logits = cosines * temperature.to(cosines.dtype).repeat_interleave(embed // heads).unsqueeze(-1)
    attention = torch.softmax(logits.masked_fill(~same_head, float("-inf")), dim=-1)  # blockdiag(A_h)
    p = product_in_layout(w_z, torch.matmul(attention, w_g), channels_last=False)  # [B, C, C]
    return product_in_layout(p, x, channels_last=is_channels_last(x))


def xca_gram_macs(n: int, channels: int, embed: int, heads: int) -> int:
    """Multiply-accumulates per sample of the XCA block in Gram form: ``x xᵀ``, ``Wθ G``, ``Wφ G``, the pairs,
    ``blockdiag(A) Wg``, ``Wz ·`` and ``P x`` (the same for every number of heads)."""
    return 2 * n * channels * channels + 3 * embed * channels * channels + 2 * embed * embed * channels
