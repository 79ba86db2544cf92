"""Cross-covariance attention (XCA; El-Nouby et al., "XCiT", NeurIPS 2021): a softmax over channels, not positions.

Source convention: ``facebookresearch/xcit``, ``xcit.py``, class ``XCA``: q and k are L2-normalised along the
positions (``F.normalize(q, dim=-1)`` on ``[B, h, d, N]``), ``attn = softmax(q̂ k̂ᵀ · temperature)`` with a
learned temperature per head, ``a = attn v``. Restormer's MDTA (Zamir et al., CVPR 2022) is the same core.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tam.functional.checks import check_qkv
from tam.functional.gram import gram_input_gradient, recomputed_gram_gradients
from tam.functional.products import is_channels_last, position_sum, product_in_layout, scaled_bmm, wide_dtype

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
    Valid without positional encoding and for ``full`` geometry.

    The backward is written out (:class:`_XcaGramForm`), as TAM's Gram form's is
    (:func:`~tam.functional.gram.gram_transposed_attention`), and shares its passes over ``[B, C, N]``: ``P x``
    forward, ``dy xᵀ`` and the gradient of ``x`` (:func:`~tam.functional.gram.gram_input_gradient`) backward;
    everything else is ``C×C`` work per sample. Second derivatives go through a recomputation by autograd.

    Shape:
        x: ``[B, C, N]``; w_theta, w_phi, w_g: ``[E, C]``; w_z: ``[C, E]``; temperature: ``[h]`` ->
        ``[B, C, N]`` in the layout of ``x``
    """
    return _XcaGramForm.apply(x, w_theta, w_phi, w_g, w_z, temperature, heads)


def _xca_fold(x: Tensor, w_theta: Tensor, w_phi: Tensor, w_g: Tensor, w_z: Tensor, temperature: Tensor, heads: int):
    """The block's ``C×C`` map ``P`` and the intermediates its backward reads, in differentiable ops.

    Returns ``(theta_gram, phi_gram, q_norm, k_norm, cosines, attention, mixed, p)``: ``Wθ G``, ``Wφ G``,
    ``‖q‖/√N`` and ``‖k‖/√N`` per embed channel (at least their floor), the cosines ``q̂ k̂ᵀ`` of every pair of
    embed channels, ``blockdiag(A_h)``, ``blockdiag(A_h) · Wg`` and ``P``.
    """
    embed, n = w_theta.shape[0], x.shape[-1]
    gram = scaled_bmm(x, x.transpose(-1, -2), 1 / n)  # [B, C, C]
    theta_gram = product_in_layout(w_theta, gram, channels_last=False)  # [B, E, C]
    phi_gram = product_in_layout(w_phi, gram, channels_last=False)
    pairs = torch.matmul(theta_gram, w_phi.transpose(0, 1))  # q kᵀ / N for every pair of embed channels
    q_norm = (theta_gram * w_theta).sum(-1).clamp_min(0).sqrt().clamp_min(_norm_floor(n))  # ‖q_c‖ / √N: [B, E]
    k_norm = (phi_gram * w_phi).sum(-1).clamp_min(0).sqrt().clamp_min(_norm_floor(n))
    cosines = pairs / q_norm.unsqueeze(-1) / k_norm.unsqueeze(-2)
    logits = cosines * _row_temperature(temperature, embed, cosines.dtype).unsqueeze(-1)
    head = torch.arange(embed, device=x.device) // (embed // heads)
    same_head = head.unsqueeze(1) == head.unsqueeze(0)
    attention = torch.softmax(logits.masked_fill(~same_head, float("-inf")), dim=-1)  # blockdiag(A_h)
    mixed = torch.matmul(attention, w_g)  # [B, E, C]
    p = product_in_layout(w_z, mixed, channels_last=False)  # [B, C, C]
    return theta_gram, phi_gram, q_norm, k_norm, cosines, attention, mixed, p


def _norm_floor(n: int) -> float:
    """``max(‖q‖, eps) / √N``: the floor of the norms the Gram form forms (divided by ``√N``)."""
    return NORM_EPS / n**0.5


def _row_temperature(temperature: Tensor, embed: int, dtype: torch.dtype) -> Tensor:
    """Each embed channel's head temperature. Shape: temperature ``[h]`` -> ``[E]``."""
    return temperature.to(dtype).repeat_interleave(embed // temperature.shape[0])


class _XcaGramForm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_theta, w_phi, w_g, w_z, temperature, heads: int):
        *intermediates, p = _xca_fold(x, w_theta, w_phi, w_g, w_z, temperature, heads)
        ctx.save_for_backward(x, w_theta, w_phi, w_g, w_z, temperature, *intermediates, p)
        ctx.heads = heads
        return product_in_layout(p, x, channels_last=is_channels_last(x))

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled():  # create_graph: second derivatives need every saved intermediate's own graph
            fold = lambda x, *weights: _xca_fold(x, *weights, ctx.heads)[-1]  # noqa: E731
            return (*recomputed_gram_gradients(ctx, grad, fold, inputs=6), None)
        saved = ctx.saved_tensors
        wide = wide_dtype(grad.dtype)  # the C×C maps in at least float32, as TAM's Gram-form backward forms them
        x = saved[0].to(grad.dtype)
        w_theta, w_phi, w_g, w_z, temperature, theta_gram, phi_gram, q_norm, k_norm, cosines, attention, mixed, p = (
            t.to(wide) for t in saved[1:]
        )
        n, embed = x.shape[-1], w_theta.shape[0]
        # Back through y = P x, P = Wz·mixed, mixed = A Wg, A = softmax(τ·cosines within heads),
        # cosines = pairs / (q_norm k_normᵀ), pairs = Wθ G Wφᵀ, norm² = diag(W G Wᵀ), G = x xᵀ / N.
        d_p = position_sum(grad, x)  # [B, C, C]
        d_mixed = product_in_layout(w_z.transpose(0, 1), d_p, channels_last=False)  # [B, E, C]
        d_attention = torch.matmul(d_mixed, w_g.transpose(0, 1))  # [B, E, E]
        d_logits = attention * (d_attention - (d_attention * attention).sum(-1, keepdim=True))  # 0 across heads
        d_cosines = d_logits * _row_temperature(temperature, embed, wide).unsqueeze(-1)
        d_pairs = d_cosines / q_norm.unsqueeze(-1) / k_norm.unsqueeze(-2)
        through_norms = d_cosines * cosines  # ∂/∂norm of cosine_ij = -cosine_ij / norm
        floor = _norm_floor(n)
        # norm = sqrt(square) where above its floor: d square = -Σ (d_cos · cos) / norm / (2 norm).
        d_q_square = -through_norms.sum(-1) / (2 * q_norm.square()) * (q_norm > floor)  # [B, E]
        d_k_square = -through_norms.sum(-2) / (2 * k_norm.square()) * (k_norm > floor)
        # d pairs_ij / d theta_gram_ic = Wφ_jc; d square_i / d theta_gram_ic = Wθ_ic (and so for k).
        d_theta_gram = torch.matmul(d_pairs, w_phi).addcmul_(d_q_square.unsqueeze(-1), w_theta)  # [B, E, C]
        d_phi_gram = d_k_square.unsqueeze(-1) * w_phi
        d_x = None
        if ctx.needs_input_grad[0]:
            d_gram = product_in_layout(w_theta.transpose(0, 1), d_theta_gram, channels_last=False).baddbmm_(
                w_phi.transpose(0, 1).expand(x.shape[0], -1, -1), d_phi_gram
            )  # [B, C, C]
            d_x = gram_input_gradient(grad, x, p, d_gram, channels_last=is_channels_last(saved[0]))
        weight_grads = (  # each a sum over the batch of per-sample products
            lambda: torch.matmul(d_pairs, phi_gram).addcmul_(d_q_square.unsqueeze(-1), theta_gram, value=2),  # Wθ
            lambda: torch.matmul(d_pairs.transpose(-1, -2), theta_gram).addcmul_(
                d_k_square.unsqueeze(-1), phi_gram, value=2
            ),  # Wφ
            lambda: torch.matmul(attention.transpose(-1, -2), d_mixed),  # Wg
            lambda: torch.matmul(d_p, mixed.transpose(-1, -2)),  # Wz
        )
        grads = [d_x, *(g().sum(0) if needed else None for g, needed in zip(weight_grads, ctx.needs_input_grad[1:5]))]
        d_temperature = None
        if ctx.needs_input_grad[5]:  # Σ over a head's rows of d_logits · cosines
            d_temperature = (d_logits * cosines).sum((0, 2)).view(ctx.heads, -1).sum(-1)
        grads.append(d_temperature)
        grads = [g if g is None or g.dtype == t.dtype else g.to(t.dtype) for g, t in zip(grads, saved[:6])]
        return (*grads, None)


def xca_gram_macs(n: int, channels: int, embed: int, heads: int) -> int:
    """Multiply-accumulates per sample of the XCA block in Gram form: ``x xᵀ``, ``Wθ G``, ``Wφ G``, the pairs,
    ``blockdiag(A) Wg``, ``Wz ·`` and ``P x`` (the same for every number of heads)."""
    return 2 * n * channels * channels + 3 * embed * channels * channels + 2 * embed * embed * channels
