"""TAM's Gram form: the whole block folded into one ``C×C`` map per sample through ``x xᵀ``."""

from __future__ import annotations

import torch
from torch import Tensor

from tam.functional.checks import NORMALIZATIONS, check_choice
from tam.functional.products import is_channels_last, position_sum, product_in_layout, scaled_bmm, wide_dtype


def gram_transposed_attention(
    x: Tensor,
    w_theta: Tensor,
    w_phi: Tensor,
    w_g: Tensor,
    w_z: Tensor,
    *,
    heads: int,
    normalization: str = "scale",
    scale: float | None = None,
) -> Tensor:
    """``Wz · transposed_attention(Wθ x, Wφ x, Wg x)`` through the Gram matrix ``x xᵀ`` (DESIGN §1).

    Per head ``v kᵀ = Wg_h (x xᵀ) Wφ_hᵀ``, so the whole block folds into one ``C×C`` map per sample:
    ``P = Wz · blockdiag(M_h) · Wθ``, applied to ``x``. Cost ``2·N·C²`` plus terms free of ``N``,
    whatever the number of heads; q, k and v are never formed. Valid for ``full`` geometry without
    positional encoding.

    The backward is written out (:class:`_GramForm`): ``x`` is used twice, in ``x xᵀ`` and in ``P x``, and
    its gradient ``Pᵀ dy + (dG + dGᵀ) x / N`` is formed by two products into one buffer, where autograd
    would write one per use and add them in a further pass over ``[B, C, N]``.

    ``scale`` is the factor on ``v kᵀ``, as in :func:`~tam.functional.transposed_map`.

    Shape:
        x: ``[B, C, N]``; w_theta, w_phi, w_g: ``[E, C]``; w_z: ``[C, E]`` -> ``[B, C, N]``, in the layout of
        ``x`` (channel-innermost strides when ``x`` has them)
    """
    check_choice("normalization", normalization, NORMALIZATIONS)
    return _GramForm.apply(x, w_theta, w_phi, w_g, w_z, heads, normalization, scale)


def _pairs_factor(n: int, d: int, normalization: str, scale: float | None) -> float:
    """What turns ``pairs = v kᵀ / N`` into the scaled map (``scale``) or the softmax logits (``softmax``)."""
    if scale is not None:
        return n * scale
    return (n / d) ** 0.5 if normalization == "scale" else n**0.5


def _fold(x: Tensor, w_theta: Tensor, w_phi: Tensor, w_g: Tensor, w_z: Tensor, heads: int, normalization: str,
          scale: float | None):
    """The block's ``C×C`` map ``P`` and the intermediates its backward reads, in differentiable ops.

    Returns ``(gram, wg_gram, weights, mask, folded, p)``: ``G = x xᵀ / N``, ``Wg G``, the within-head
    weights (scaled ``pairs`` or their softmax), the head mask, ``blockdiag(M_h) · Wθ`` and ``P``.
    """
    embed = w_theta.shape[0]
    d = embed // heads
    n = x.shape[-1]
    # x xᵀ itself can overflow fp16 where the output fits: form the *mean* outer product (entries bounded
    # by max x²; scaled on the accumulator), and apply the rest of the scale to the small d×d maps.
    gram = scaled_bmm(x, x.transpose(-1, -2), 1 / n)  # [B, C, C]
    # v kᵀ / N for every pair of embed channels, then only the blocks within a head: one matmul whatever h,
    # where per-head products would be h tiny ones (d×d blocks cost as much time as the whole E×E map).
    wg_gram = product_in_layout(w_g, gram, channels_last=False)  # [B, E, C]
    pairs = torch.matmul(wg_gram, w_phi.transpose(0, 1))  # [B, E, E]
    factor = _pairs_factor(n, d, normalization, scale)
    if normalization == "scale":
        mask = _same_head(embed, d, pairs.device).to(pairs.dtype) * factor
        m = weights = pairs * mask  # mask and scale in one pass
    else:
        mask = _same_head(embed, d, pairs.device)
        # Unscaled logits (factor N) can pass float16's range where the softmax itself is fine.
        logits = (pairs.float() if pairs.dtype == torch.float16 and scale is not None else pairs) * factor
        weights = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1).to(pairs.dtype)
        m = weights * d**-0.5
    folded = torch.matmul(m, w_theta)  # [B, E, C]: blockdiag(M_h) · Wθ
    p = product_in_layout(w_z, folded, channels_last=False)  # [B, C, C]
    return gram, wg_gram, weights, mask, folded, p


class _GramForm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_theta, w_phi, w_g, w_z, heads: int, normalization: str, scale: float | None):
        gram, wg_gram, weights, mask, folded, p = _fold(x, w_theta, w_phi, w_g, w_z, heads, normalization, scale)
        ctx.save_for_backward(x, w_theta, w_phi, w_g, w_z, gram, wg_gram, weights, folded, p, mask)
        ctx.normalization, ctx.heads, ctx.scale = normalization, heads, scale
        ctx.scales = (x.shape[-1], w_theta.shape[0] // heads)
        return product_in_layout(p, x, channels_last=is_channels_last(x))

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled():  # create_graph: second derivatives need every saved intermediate's own graph
            fold = lambda x, *weights: _fold(x, *weights, ctx.heads, ctx.normalization, ctx.scale)[-1]  # noqa: E731
            return (*recomputed_gram_gradients(ctx, grad, fold, inputs=5), None, None, None)
        *saved, mask = ctx.saved_tensors
        # The C×C maps are formed in at least float32 (wide): their gradients are sums over the N positions,
        # which pass float16's range at realistic sizes; only the [B, C, N] products stay in grad's dtype.
        wide = wide_dtype(grad.dtype)
        x = saved[0].to(grad.dtype)
        w_theta, w_phi, w_g, w_z, gram, wg_gram, weights, folded, p = (t.to(wide) for t in saved[1:])
        n, d = ctx.scales
        factor = _pairs_factor(n, d, ctx.normalization, ctx.scale)
        # Back through y = P x, P = Wz F, F = m Wθ, m = f(pairs), pairs = (Wg G) Wφᵀ, G = x xᵀ / N.
        d_p = position_sum(grad, x)  # [B, C, C]
        d_folded = product_in_layout(w_z.transpose(0, 1), d_p, channels_last=False)  # [B, E, C]
        d_m = torch.matmul(d_folded, w_theta.transpose(0, 1))  # [B, E, E]
        if ctx.normalization == "scale":
            d_pairs = d_m * mask.to(d_m.dtype)
        else:  # m = softmax(pairs·factor, within heads) / sqrt(d)
            d_weights = d_m * d**-0.5
            d_pairs = weights * (d_weights - (d_weights * weights).sum(-1, keepdim=True)) * factor
        d_wg_gram = torch.matmul(d_pairs, w_phi)  # [B, E, C]
        d_x = None
        if ctx.needs_input_grad[0]:
            d_gram = product_in_layout(w_g.transpose(0, 1), d_wg_gram, channels_last=False)  # [B, C, C]
            d_x = gram_input_gradient(grad, x, p, d_gram, channels_last=is_channels_last(saved[0]))
        m = weights if ctx.normalization == "scale" else weights * d**-0.5
        weight_grads = (  # each a sum over the batch of per-sample products
            lambda: torch.matmul(m.transpose(-1, -2), d_folded),  # Wθ
            lambda: torch.matmul(d_pairs.transpose(-1, -2), wg_gram),  # Wφ
            lambda: torch.matmul(d_wg_gram, gram),  # Wg (G is symmetric)
            lambda: torch.matmul(d_p, folded.transpose(-1, -2)),  # Wz
        )
        grads = [d_x, *(g().sum(0) if needed else None for g, needed in zip(weight_grads, ctx.needs_input_grad[1:5]))]
        grads = [g if g is None or g.dtype == t.dtype else g.to(t.dtype) for g, t in zip(grads, saved[:5])]
        return (*grads, None, None, None)


def gram_input_gradient(grad: Tensor, x: Tensor, p: Tensor, d_gram: Tensor, *, channels_last: bool) -> Tensor:
    """The gradient of ``x`` through ``y = P x`` with ``P`` a function of ``G = x xᵀ / N``: ``Pᵀ dy + (dG + dGᵀ) x / N``.

    The second product accumulates into the first, in the layout of ``x`` (PyTorch's CPU ``baddbmm_`` still
    copies its target before accumulating: the pass an addition would cost, without a second ``[B, C, N]``
    buffer). ``p`` and ``d_gram`` may be wider than ``x`` (half precision): ``dG``, a sum over positions, is
    then divided by ``N`` before it is narrowed to ``x``'s dtype.

    Shape:
        grad, x: ``[B, C, N]``; p, d_gram: ``[B, C, C]`` -> ``[B, C, N]`` in the layout ``channels_last`` names
    """
    sym = d_gram + d_gram.transpose(-1, -2)
    alpha = 1 / x.shape[-1]
    if sym.dtype != x.dtype:
        sym, alpha, p = (sym * alpha).to(x.dtype), 1.0, p.to(x.dtype)
    if channels_last:
        return torch.matmul(grad.transpose(-1, -2), p).baddbmm_(x.transpose(-1, -2), sym, alpha=alpha).transpose(-1, -2)
    return torch.matmul(p.transpose(-1, -2), grad).baddbmm_(sym, x, alpha=alpha)


def recomputed_gram_gradients(ctx, grad: Tensor, fold, *, inputs: int) -> tuple[Tensor | None, ...]:
    """The gradients of a Gram form's first ``inputs`` saved tensors (``x`` first) through a differentiable
    recomputation of its forward ``y = fold(x, ...) x``, for double backward.

    A written-out backward reads intermediates saved without a graph, so differentiating it again would
    treat them as constants; recomputing ``P x`` from the inputs and letting autograd form its gradient
    keeps every dependence (on ``x``, the weights and ``grad``) in the graph. Only ``create_graph`` runs pay it.
    """
    tensors, needs = ctx.saved_tensors[:inputs], ctx.needs_input_grad[:inputs]
    y = torch.matmul(fold(*tensors), tensors[0])
    wanted = [t for t, needed in zip(tensors, needs) if needed]
    found = iter(torch.autograd.grad(y, wanted, grad, create_graph=True))
    return tuple(next(found) if needed else None for needed in needs)


def _same_head(embed: int, d: int, device: torch.device) -> Tensor:
    """``[E, E]`` bool: whether two embed channels belong to the same head (heads of width ``d``)."""
    head = torch.arange(embed, device=device) // d
    return head.unsqueeze(1) == head.unsqueeze(0)


def gram_macs(n: int, channels: int, embed: int, heads: int) -> int:
    """Multiply-accumulates per sample of the block in Gram form (``x xᵀ``, the folded map, its product):
    the same for every number of heads."""
    return 2 * n * channels * channels + embed * channels * (2 * channels + embed) + embed * embed * channels
