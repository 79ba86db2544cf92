"""Linear-cost attentions whose normalisation replaces the ``N×N`` softmax: Efficient Attention, linear
(elu + 1) attention and global context. Each is a ``d×d`` (or ``d×1``) summary of keys and values, applied to
every query; their spatial weights exist implicitly and :func:`efficient_map`, :func:`linear_map` and
:func:`global_context_map` return them for analysis.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tam.functional.checks import check_qkv
from tam.functional.products import scaled_bmm

LINEAR_EPS = 1e-6  # fast-transformers' LinearAttention default


# -- Efficient Attention (Shen et al., WACV 2021) ----------------------------------------------------------------


def efficient_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Efficient Attention: ``a = Gᵀ ρ_q(q)`` with ``G = ρ_k(k) vᵀ`` (``d×dv`` per head).

    ``ρ_q``: softmax over the ``d`` channels at each position; ``ρ_k``: softmax over the ``N`` positions of
    each channel. Source: ``cmsflash/efficient-attention``, ``efficient_attention.py`` (``key.softmax(dim=2)``,
    ``query.softmax(dim=1)``, ``context = key @ value.T``, ``context.T @ query``). Cost ``2·N·d·dv`` per head.

    Shape:
        q, k: ``[B, h, d, N]``, v: ``[B, h, dv, N]`` -> ``[B, h, dv, N]``

    Example:
        >>> q, k, v = torch.randn(3, 2, 4, 8, 64).unbind(0)
        >>> efficient_attention(q, k, v).shape
        torch.Size([2, 4, 8, 64])
    """
    check_qkv(q, k, v, rank=4)
    return torch.matmul(efficient_context(k, v).transpose(-1, -2), torch.softmax(q, dim=-2))


def efficient_context(k: Tensor, v: Tensor) -> Tensor:
    """``G = ρ_k(k) vᵀ``. Shape: k ``[B, h, d, N]``, v ``[B, h, dv, N]`` -> ``[B, h, d, dv]``."""
    return torch.matmul(torch.softmax(k, dim=-1), v.transpose(-1, -2))


def efficient_map(q: Tensor, k: Tensor) -> Tensor:
    """Implied spatial weights ``w_ij = ρ_q(q_i)·ρ_k(k_j)`` (each row sums to 1).

    Shape:
        q: ``[B, h, d, Q]``, k: ``[B, h, d, N]`` -> ``[B, h, Q, N]``
    """
    return torch.matmul(torch.softmax(q, dim=-2).transpose(-1, -2), torch.softmax(k, dim=-1))


# -- linear attention (Katharopoulos et al., ICML 2020) -----------------------------------------------------------


def elu_feature_map(t: Tensor) -> Tensor:
    """``φ(t) = elu(t) + 1``, positive everywhere."""
    return F.elu(t) + 1


def linear_attention(q: Tensor, k: Tensor, v: Tensor, *, eps: float = LINEAR_EPS) -> Tensor:
    """Linear attention: ``a_i = (Σ_j v_j φ(k_j)ᵀ) φ(q_i) / (φ(q_i)·Σ_j φ(k_j) + ε)``, ``φ = elu + 1``.

    Source: ``idiap/fast-transformers``, ``fast_transformers/attention/linear_attention.py`` (feature map
    ``elu(x) + 1``, ``eps=1e-6``). Both sums over ``N`` are taken as means (the scale on the product's
    accumulator, ``ε`` divided by ``N`` too, so the function is unchanged): half precision never stores the
    unscaled sums, and the product with ``φ(q)`` and the normalisation run in at least float32.

    Shape:
        q, k: ``[B, h, d, N]``, v: ``[B, h, dv, N]`` -> ``[B, h, dv, N]``

    Example:
        >>> q, k, v = torch.randn(3, 2, 4, 8, 64).unbind(0)
        >>> linear_attention(q, k, v).shape
        torch.Size([2, 4, 8, 64])
    """
    check_qkv(q, k, v, rank=4)
    fq = elu_feature_map(q)
    wide = torch.promote_types(q.dtype, torch.float32)  # the product with φ(q) can overflow fp16 before the division
    numerator = torch.matmul(linear_context(k, v).to(wide), fq.to(wide))  # [B, h, dv, N]
    return (numerator / _linear_denominator(fq, k, eps)).to(v.dtype)


def linear_context(k: Tensor, v: Tensor) -> Tensor:
    """``Σ_j v_j φ(k_j)ᵀ / N``, the ``dv×d`` map of linear attention. Shape: -> ``[B, h, dv, d]``."""
    fk = elu_feature_map(k)
    n = k.shape[-1]
    return scaled_bmm(v.flatten(0, -3), fk.flatten(0, -3).transpose(-1, -2), 1 / n).unflatten(0, v.shape[:-2])


def _linear_denominator(fq: Tensor, k: Tensor, eps: float) -> Tensor:
    """``φ(q_i)·mean_j φ(k_j) + ε/N`` in at least float32. Shape: -> ``[B, h, 1, N]``."""
    n = k.shape[-1]
    wide = torch.promote_types(k.dtype, torch.float32)
    z = elu_feature_map(k).to(wide).mean(-1, keepdim=True)  # [B, h, d, 1]
    return torch.matmul(z.transpose(-1, -2), fq.to(wide)) + eps / n


def linear_map(q: Tensor, k: Tensor, *, eps: float = LINEAR_EPS) -> Tensor:
    """Implied spatial weights ``w_ij = φ(q_i)·φ(k_j) / (φ(q_i)·Σ_l φ(k_l) + ε)`` (rows sum to just under 1).

    Shape:
        q: ``[B, h, d, Q]``, k: ``[B, h, d, N]`` -> ``[B, h, Q, N]``
    """
    kernel = torch.matmul(elu_feature_map(q).transpose(-1, -2), elu_feature_map(k)) / k.shape[-1]
    return kernel / _linear_denominator(elu_feature_map(q), k, eps).transpose(-1, -2).to(kernel.dtype)


# -- global context (GCNet, Cao et al., ICCVW 2019) ---------------------------------------------------------------


def global_context_weights(k: Tensor) -> Tensor:
    """One softmax over positions per head, from the logit ``l_j = Σ_c k_cj`` (the head's key channels summed).

    Shape:
        k: ``[B, h, d, N]`` -> ``[B, h, N]``
    """
    return torch.softmax(k.sum(-2), dim=-1)


def global_context_attention(k: Tensor, v: Tensor) -> Tensor:
    """Global context: ``a = Σ_j softmax_j(l_j) v_j``, the same vector for every query position.

    Source: ``xvjiarui/GCNet``, ``mmdet/ops/gcb/context_block.py`` (``spatial_pool``: a 1×1 conv to one
    logit per position, softmax over positions, the weighted sum of the input). Here the logits come from the
    shell's key projection and the pooled values from its value projection; cost ``N·dv`` per head.

    Shape:
        k: ``[B, h, d, N]``, v: ``[B, h, dv, N]`` -> ``[B, h, dv, N]``
    """
    check_qkv(k, k, v, rank=4)
    context = torch.matmul(v, global_context_weights(k).unsqueeze(-1))  # [B, h, dv, 1]
    return context.expand(-1, -1, -1, v.shape[-1])


def global_context_map(k: Tensor, queries: int) -> Tensor:
    """The spatial weights, the same row for each of ``queries`` queries. Shape: -> ``[B, h, queries, N]``."""
    weights = global_context_weights(k)
    return weights.unsqueeze(-2).expand(-1, -1, queries, -1)
