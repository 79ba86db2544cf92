"""Stateless attention cores.

Every core takes per-head queries, keys and values with channels before positions, ``[B, h, d, N]``
(criss-cross keeps the 2-D grid, ``[B, h, d, H, W]``), and returns the attended values in the same layout.
The modules in :mod:`tam.layers` own the projections around these cores; the tests hold written-out
references for each of them.

Notation (DESIGN §1): ``N`` positions, ``d`` query/key width per head, ``s = 1/sqrt(N·d)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

NORMALIZATIONS = ("scale", "softmax")
GEOMETRIES = ("full", "magnitude", "direction")
NON_LOCAL_IMPLS = ("auto", "naive", "sdpa")


def check_choice(name: str, value: object, allowed: tuple) -> None:
    """Raise a `ValueError` (or `TypeError` for a non-string) naming ``name`` unless ``value`` is allowed."""
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be one of {allowed}, got {type(value).__name__} {value!r}")
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def weight_matmul(weight: Tensor, t: Tensor, *, channels_last: bool = False) -> Tensor:
    """``weight @ t[b]`` for every sample, as one ``bmm`` with a 2-D weight broadcast over the batch.

    ``torch.matmul(weight, t)`` with a 2-D ``weight`` folds the batch into one ``mm`` and then copies the
    transposed product into place; the broadcast form writes it where it belongs. With ``channels_last``
    the product is written channel-innermost (``t[b]ᵀ weightᵀ``, returned as its ``[B, O, N]`` view): the
    layout of a flattened ``channels_last`` feature map, so BN and the residual sum read it in order. Its
    backward returns the gradient of ``t`` in the layout of ``t``, where autograd would write it
    channel-innermost too and the layer before would have to copy it.

    Shape:
        weight: ``[O, I]`` or per sample ``[B, O, I]``, t: ``[B, I, N]`` -> ``[B, O, N]``
    """
    if channels_last:
        return _ChannelsLastMatmul.apply(weight, t)
    return _product_in_layout(weight, t, channels_last=False)


def _product_in_layout(weight: Tensor, t: Tensor, channels_last: bool) -> Tensor:
    """:func:`weight_matmul` without autograd bookkeeping, for autograd Functions that write their own backward."""
    if channels_last:
        return torch.matmul(t.transpose(-1, -2), weight.expand(t.shape[0], -1, -1).transpose(-1, -2)).transpose(-1, -2)
    return torch.matmul(weight.expand(t.shape[0], -1, -1), t)


class _ChannelsLastMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight: Tensor, t: Tensor) -> Tensor:
        ctx.save_for_backward(weight, t)
        return _product_in_layout(weight, t, channels_last=True)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        weight, t = ctx.saved_tensors
        grad_weight = grad_t = None
        if ctx.needs_input_grad[0]:
            grad_weight = torch.matmul(grad, t.to(grad.dtype).transpose(-1, -2))  # [B, O, I]
            grad_weight = (grad_weight.sum(0) if weight.dim() == 2 else grad_weight).to(weight.dtype)
        if ctx.needs_input_grad[1]:
            w_t = weight.to(grad.dtype).transpose(-1, -2)
            grad_t = weight_matmul(w_t, grad, channels_last=is_channels_last(t)).to(t.dtype)
        return grad_weight, grad_t


def is_channels_last(t: Tensor) -> bool:
    """Whether ``[B, C, N]`` keeps its channels innermost, as a flattened ``channels_last`` map does."""
    return t.stride(1) < t.stride(2)


def scaled_bmm(a: Tensor, b: Tensor, scale: float) -> Tensor:
    """``scale · (a @ b)`` with the scale applied to the accumulator before the result is stored.

    Half-precision inputs then never store the unscaled product (which can overflow fp16 where the scaled
    one fits), and no pass over ``a`` or ``b`` is spent on scaling them.

    Shape:
        a: ``[B, M, K]``, b: ``[B, K, N]`` -> ``[B, M, N]``
    """
    return torch.baddbmm(a.new_zeros(()), a, b, beta=0, alpha=scale)


def _check_qkv(q: Tensor, k: Tensor, v: Tensor, rank: int, same_positions: bool = True) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a Tensor, got {type(t).__name__}")
        if t.dim() != rank:
            raise ValueError(f"{name} must have {rank} dims, got shape {tuple(t.shape)}")
    if q.shape[:2] != k.shape[:2] or k.shape[:2] != v.shape[:2]:
        raise ValueError(f"q, k, v must share [B, h]: got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[2] != k.shape[2]:
        raise ValueError(f"q and k must have the same width d: got {q.shape[2]} and {k.shape[2]}")
    if k.shape[3:] != v.shape[3:] or (same_positions and q.shape[3:] != k.shape[3:]):
        raise ValueError(f"q, k, v positions do not match: {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")


def apply_geometry(t: Tensor, geometry: str, eps: float = 1e-6) -> Tensor:
    """Keep a factor of ``q·k = |q||k|cos∠``: the vectors as they are, their norms, or their directions.

    Shape:
        t: ``[B, h, d, N]`` -> ``[B, h, d, N]`` (``full``, ``direction``) or ``[B, h, 1, N]`` (``magnitude``).
    """
    check_choice("geometry", geometry, GEOMETRIES)
    if geometry == "full":
        return t
    norm = torch.linalg.vector_norm(t, dim=2, keepdim=True)
    return norm if geometry == "magnitude" else t / (norm + eps)


def transposed_map(k: Tensor, v: Tensor, *, normalization: str = "scale") -> Tensor:
    """The ``d×d`` map of transposed attention: ``s·v kᵀ`` or ``softmax_rows(v kᵀ / sqrt(N))``.

    The scale rides on the product's accumulator (:func:`scaled_bmm`): half-precision inputs never store
    the unscaled ``v kᵀ`` (it overflows fp16 at realistic sizes).

    Shape:
        k: ``[B, h, d, N]``, v: ``[B, h, dv, N]`` -> ``[B, h, dv, d]``
    """
    check_choice("normalization", normalization, NORMALIZATIONS)
    n, d = k.shape[-1], k.shape[-2]
    scale = (n * d) ** -0.5 if normalization == "scale" else n**-0.5
    m = scaled_bmm(v.flatten(0, -3), k.flatten(0, -3).transpose(-1, -2), scale).unflatten(0, v.shape[:-2])
    return m if normalization == "scale" else torch.softmax(m, dim=-1)


def transposed_attention(q: Tensor, k: Tensor, v: Tensor, *, normalization: str = "scale") -> Tensor:
    """Transposed attention: ``a = M q`` with the ``d×d`` map ``M`` of :func:`transposed_map`.

    With ``normalization="scale"`` this is exactly Non-local ``scale`` attention, ``s·Σ_j (q_i·k_j) v_j``,
    evaluated as ``(v kᵀ) q`` instead of ``v (kᵀ q)``: cost ``2·N·d·dv`` per head, no ``N×N`` tensor.
    ``softmax`` is the ablation of the thesis: ``a = softmax_rows(v kᵀ / sqrt(N)) q / sqrt(d)``.

    Shape:
        q, k: ``[B, h, d, N]``, v: ``[B, h, dv, N]`` -> ``[B, h, dv, N]``

    Example:
        >>> q, k, v = torch.randn(3, 2, 4, 8, 64).unbind(0)
        >>> transposed_attention(q, k, v).shape
        torch.Size([2, 4, 8, 64])
    """
    _check_qkv(q, k, v, rank=4)
    m = transposed_map(k, v, normalization=normalization)
    a = torch.matmul(m, q)
    return a if normalization == "scale" else a * q.shape[-2] ** -0.5


def gram_transposed_attention(
    x: Tensor,
    w_theta: Tensor,
    w_phi: Tensor,
    w_g: Tensor,
    w_z: Tensor,
    *,
    heads: int,
    normalization: str = "scale",
) -> Tensor:
    """``Wz · transposed_attention(Wθ x, Wφ x, Wg x)`` through the Gram matrix ``x xᵀ`` (DESIGN §1).

    Per head ``v kᵀ = Wg_h (x xᵀ) Wφ_hᵀ``, so the whole block folds into one ``C×C`` map per sample:
    ``P = Wz · blockdiag(M_h) · Wθ``, applied to ``x``. Cost ``2·N·C²`` plus terms free of ``N``,
    whatever the number of heads; q, k and v are never formed. Valid for ``full`` geometry without
    positional encoding.

    The backward is written out (:class:`_GramForm`): ``x`` is used twice, in ``x xᵀ`` and in ``P x``, and
    its gradient ``Pᵀ dy + (dG + dGᵀ) x / N`` is formed by two products into one buffer, where autograd
    would write one per use and add them in a further pass over ``[B, C, N]``.

    Shape:
        x: ``[B, C, N]``; w_theta, w_phi, w_g: ``[E, C]``; w_z: ``[C, E]`` -> ``[B, C, N]``, in the layout of
        ``x`` (channel-innermost strides when ``x`` has them)
    """
    check_choice("normalization", normalization, NORMALIZATIONS)
    return _GramForm.apply(x, w_theta, w_phi, w_g, w_z, heads, normalization)


class _GramForm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_theta, w_phi, w_g, w_z, heads: int, normalization: str):
        embed = w_theta.shape[0]
        d = embed // heads
        n = x.shape[-1]
        # x xᵀ itself can overflow fp16 where the output fits: form the *mean* outer product (entries bounded
        # by max x²; scaled on the accumulator), and apply the rest of the scale to the small d×d maps.
        gram = scaled_bmm(x, x.transpose(-1, -2), 1 / n)  # [B, C, C]
        # v kᵀ / N for every pair of embed channels, then only the blocks within a head: one matmul whatever h,
        # where per-head products would be h tiny ones (d×d blocks cost as much time as the whole E×E map).
        wg_gram = _product_in_layout(w_g, gram, channels_last=False)  # [B, E, C]
        pairs = torch.matmul(wg_gram, w_phi.transpose(0, 1))  # [B, E, E]
        if normalization == "scale":
            mask = _scaled_head_mask(embed, d, n, pairs)
            m = weights = pairs * mask  # mask and scale in one pass
        else:
            mask = _same_head(embed, d, pairs.device)
            weights = torch.softmax((pairs * n**0.5).masked_fill(~mask, float("-inf")), dim=-1)
            m = weights * d**-0.5
        folded = torch.matmul(m, w_theta)  # [B, E, C]: blockdiag(M_h) · Wθ
        p = _product_in_layout(w_z, folded, channels_last=False)  # [B, C, C]
        ctx.save_for_backward(x, w_theta, w_phi, w_g, w_z, gram, wg_gram, weights, folded, p, mask)
        ctx.normalization, ctx.scales = normalization, (n, d)
        return _product_in_layout(p, x, channels_last=is_channels_last(x))

    @staticmethod
    def backward(ctx, grad):
        *saved, mask = ctx.saved_tensors
        x, w_theta, w_phi, w_g, w_z, gram, wg_gram, weights, folded, p = (
            t if t.dtype == grad.dtype else t.to(grad.dtype) for t in saved
        )
        n, d = ctx.scales
        # Back through y = P x, P = Wz F, F = m Wθ, m = f(pairs), pairs = (Wg G) Wφᵀ, G = x xᵀ / N.
        d_p = torch.matmul(grad, x.transpose(-1, -2))  # [B, C, C]
        d_folded = _product_in_layout(w_z.transpose(0, 1), d_p, channels_last=False)  # [B, E, C]
        d_m = torch.matmul(d_folded, w_theta.transpose(0, 1))  # [B, E, E]
        if ctx.normalization == "scale":
            d_pairs = d_m * mask.to(d_m.dtype)
        else:  # m = softmax(pairs·sqrt(N), within heads) / sqrt(d)
            d_weights = d_m * d**-0.5
            d_pairs = weights * (d_weights - (d_weights * weights).sum(-1, keepdim=True)) * n**0.5
        d_wg_gram = torch.matmul(d_pairs, w_phi)  # [B, E, C]
        d_x = None
        if ctx.needs_input_grad[0]:
            # Pᵀ dy + (dG + dGᵀ) x / N, the second product accumulating into the first, in the layout of x.
            # (PyTorch's CPU baddbmm_ still copies its target before accumulating: the pass an addition would
            # cost, without a second [B, C, N] buffer.)
            d_gram = _product_in_layout(w_g.transpose(0, 1), d_wg_gram, channels_last=False)  # [B, C, C]
            sym = d_gram + d_gram.transpose(-1, -2)
            if is_channels_last(saved[0]):
                d_x = torch.matmul(grad.transpose(-1, -2), p).baddbmm_(x.transpose(-1, -2), sym, alpha=1 / n)
                d_x = d_x.transpose(-1, -2)
            else:
                d_x = torch.matmul(p.transpose(-1, -2), grad).baddbmm_(sym, x, alpha=1 / n)
        m = weights if ctx.normalization == "scale" else weights * d**-0.5
        weight_grads = (  # each a sum over the batch of per-sample products
            lambda: torch.matmul(m.transpose(-1, -2), d_folded),  # Wθ
            lambda: torch.matmul(d_pairs.transpose(-1, -2), wg_gram),  # Wφ
            lambda: torch.matmul(d_wg_gram, gram),  # Wg (G is symmetric)
            lambda: torch.matmul(d_p, folded.transpose(-1, -2)),  # Wz
        )
        grads = [d_x, *(g().sum(0) if needed else None for g, needed in zip(weight_grads, ctx.needs_input_grad[1:5]))]
        grads = [g if g is None or g.dtype == t.dtype else g.to(t.dtype) for g, t in zip(grads, saved[:5])]
        return (*grads, None, None)


def _same_head(embed: int, d: int, device: torch.device) -> Tensor:
    """``[E, E]`` bool: whether two embed channels belong to the same head (heads of width ``d``)."""
    head = torch.arange(embed, device=device) // d
    return head.unsqueeze(1) == head.unsqueeze(0)


def _scaled_head_mask(embed: int, d: int, n: int, like: Tensor) -> Tensor:
    """``[E, E]``: ``sqrt(N/d)`` where both embed channels belong to the same head, else 0."""
    return _same_head(embed, d, like.device).to(like.dtype) * (n / d) ** 0.5


def transposed_macs(n: int, channels: int, embed: int, heads: int) -> int:
    """Multiply-accumulates per sample of the block in transposed order: projections, core, output."""
    return n * (4 * embed * channels + 2 * embed * embed // heads)


def gram_macs(n: int, channels: int, embed: int, heads: int) -> int:
    """Multiply-accumulates per sample of the block in Gram form (``x xᵀ``, the folded map, its product):
    the same for every number of heads."""
    return 2 * n * channels * channels + embed * channels * (2 * channels + embed) + embed * embed * channels


def non_local_map(q: Tensor, k: Tensor, *, normalization: str = "softmax", softmax_scale: float = 1.0) -> Tensor:
    """Spatial weights of Non-local attention, ``w[i, j]`` for query position ``i`` and key position ``j``.

    Shape:
        q: ``[B, h, d, Nq]``, k: ``[B, h, d, Nk]`` -> ``[B, h, Nq, Nk]``
    """
    check_choice("normalization", normalization, NORMALIZATIONS)
    logits = torch.matmul(q.transpose(-1, -2), k)
    if normalization == "softmax":
        return torch.softmax(logits * softmax_scale, dim=-1)
    return logits * (k.shape[-1] * k.shape[-2]) ** -0.5


def non_local_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    normalization: str = "softmax",
    softmax_scale: float = 1.0,
    impl: str = "auto",
) -> Tensor:
    """Non-local attention, ``a_i = Σ_j w(q_i, k_j) v_j`` over all key positions ``j``.

    Args:
        normalization: ``"softmax"`` (embedded Gaussian, ``w = softmax_j(τ q_i·k_j)``) or ``"scale"``
            (dot product, ``w = s·q_i·k_j``).
        softmax_scale: τ, the logit scale of ``softmax`` (1.0 as in the Non-local paper).
        impl: ``"naive"`` materialises the ``[Nq, Nk]`` map; ``"sdpa"`` calls the fused
            ``scaled_dot_product_attention`` (``softmax`` only); ``"auto"`` takes ``sdpa`` for ``softmax``
            when ``q`` and ``v`` have the same width, else ``naive``.

    Shape:
        q, k: ``[B, h, d, Nq]``, ``[B, h, d, Nk]``; v: ``[B, h, dv, Nk]`` -> ``[B, h, dv, Nq]``
    """
    _check_qkv(q, k, v, rank=4, same_positions=False)
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
    w = non_local_map(q, k, normalization=normalization, softmax_scale=softmax_scale)
    return torch.matmul(v, w.transpose(-1, -2))


def _criss_cross_weights(q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    """Softmax weights of each position over its row and its column (itself counted once, in the row).

    Shape:
        q, k: ``[B, h, d, H, W]`` -> row weights ``[B, h, H, W, W]``, column weights ``[B, h, H, W, H]``
    """
    height, width = q.shape[-2:]
    row = torch.einsum("bhcij,bhciw->bhijw", q, k)
    col = torch.einsum("bhcij,bhcuj->bhiju", q, k)
    itself = torch.eye(height, dtype=torch.bool, device=q.device).unsqueeze(1)  # [i, 1, u]: u == i
    col = col.masked_fill(itself, float("-inf"))
    weights = torch.softmax(torch.cat([row, col], dim=-1), dim=-1)
    return weights.split([width, height], dim=-1)


def criss_cross_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Criss-cross attention (CCNet): each position attends over its own row and column.

    ``a_ij = Σ_{p ∈ row(i) ∪ col(j)} softmax_p(q_ij·k_p) v_p``, the position itself counted once.
    Cost ``2·N·(H+W−1)·d`` per head; memory ``N·(H+W)`` per head, never ``N×N``.

    Shape:
        q, k: ``[B, h, d, H, W]``, v: ``[B, h, dv, H, W]`` -> ``[B, h, dv, H, W]``
    """
    _check_qkv(q, k, v, rank=5)
    row, col = _criss_cross_weights(q, k)
    return torch.einsum("bhijw,bhciw->bhcij", row, v) + torch.einsum("bhiju,bhcuj->bhcij", col, v)


def criss_cross_map(q: Tensor, k: Tensor, queries: Tensor) -> Tensor:
    """Criss-cross weights of the chosen query positions over the whole grid (zero off the cross).

    Shape:
        q, k: ``[B, h, d, H, W]``, queries: ``[Q]`` flat indices -> ``[B, h, Q, H·W]``
    """
    height, width = q.shape[-2:]
    row, col = _criss_cross_weights(q, k)
    qi, qj = queries // width, queries % width
    row, col = row[:, :, qi, qj], col[:, :, qi, qj]  # [B, h, Q, W], [B, h, Q, H]
    on_row = F.one_hot(qi, height).to(row.dtype)  # [Q, H]
    on_col = F.one_hot(qj, width).to(row.dtype)  # [Q, W]
    grid = row.unsqueeze(-2) * on_row.unsqueeze(-1) + col.unsqueeze(-1) * on_col.unsqueeze(-2)
    return grid.flatten(-2)

