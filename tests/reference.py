"""Written-out references: loops over positions and heads, independent of tam.functional.

Slow by design; use them on tiny float64 inputs only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def non_local_scale(q, k, v, s=None):
    """a_i = s·Σ_j (q_i·k_j) v_j, s = 1/sqrt(Nk·d) unless given. q, k: [B, h, d, N*]; v: [B, h, dv, Nk]."""
    batch, heads, d, nq = q.shape
    nk = k.shape[-1]
    s = 1.0 / math.sqrt(nk * d) if s is None else s
    out = q.new_zeros(batch, heads, v.shape[2], nq)
    for b in range(batch):
        for h in range(heads):
            for i in range(nq):
                for j in range(nk):
                    out[b, h, :, i] += s * torch.dot(q[b, h, :, i], k[b, h, :, j]) * v[b, h, :, j]
    return out


def non_local_softmax(q, k, v, tau=1.0):
    """a_i = Σ_j softmax_j(τ q_i·k_j) v_j."""
    batch, heads, _, nq = q.shape
    nk = k.shape[-1]
    out = q.new_zeros(batch, heads, v.shape[2], nq)
    for b in range(batch):
        for h in range(heads):
            for i in range(nq):
                logits = [tau * torch.dot(q[b, h, :, i], k[b, h, :, j]) for j in range(nk)]
                top = max(logits)
                weights = [torch.exp(logit - top) for logit in logits]
                total = sum(weights)
                for j in range(nk):
                    out[b, h, :, i] += weights[j] / total * v[b, h, :, j]
    return out


def transposed_softmax(q, k, v, logit_scale=None):
    """M[r, c] = softmax_c(λ Σ_n v[r, n] k[c, n]), λ = 1/sqrt(N) unless given; a[:, n] = M q[:, n] / sqrt(d)."""
    batch, heads, d, n = q.shape
    dv = v.shape[2]
    logit_scale = 1 / math.sqrt(n) if logit_scale is None else logit_scale
    out = q.new_zeros(batch, heads, dv, n)
    for b in range(batch):
        for h in range(heads):
            for r in range(dv):
                logits = [torch.dot(v[b, h, r], k[b, h, c]) * logit_scale for c in range(d)]
                top = max(logits)
                weights = [torch.exp(logit - top) for logit in logits]
                total = sum(weights)
                for c in range(d):
                    out[b, h, r] += weights[c] / total * q[b, h, c] / math.sqrt(d)
    return out


def criss_cross(q, k, v):
    """Each (i, j) attends over row i and column j, itself once. q, k: [B, h, d, H, W]."""
    batch, heads, _, height, width = q.shape
    out = q.new_zeros(batch, heads, v.shape[2], height, width)
    for b in range(batch):
        for h in range(heads):
            for i in range(height):
                for j in range(width):
                    keys = [(i, w) for w in range(width)] + [(u, j) for u in range(height) if u != i]
                    logits = [torch.dot(q[b, h, :, i, j], k[b, h, :, u, w]) for u, w in keys]
                    top = max(logits)
                    weights = [torch.exp(logit - top) for logit in logits]
                    total = sum(weights)
                    for (u, w), weight in zip(keys, weights):
                        out[b, h, :, i, j] += weight / total * v[b, h, :, u, w]
    return out


def sincos(channels, spatial):
    """Channel c of axis group a: sin/cos(p_a·10000^(-2·(i//2)/size)), i its index in the group."""
    axes = len(spatial)
    sizes = [channels // axes + (1 if a < channels % axes else 0) for a in range(axes)]
    positions = list(torch.cartesian_prod(*[torch.arange(n) for n in spatial]).reshape(-1, axes).tolist())
    table = torch.zeros(channels, len(positions), dtype=torch.float64)
    c = 0
    for axis, size in enumerate(sizes):
        for i in range(size):
            omega = 10000.0 ** (-2 * (i // 2) / size)
            for n, pos in enumerate(positions):
                angle = pos[axis] * omega
                table[c, n] = math.sin(angle) if i % 2 == 0 else math.cos(angle)
            c += 1
    return table


def block(layer, x, core):
    """The block shell of DESIGN §1 written out, with `core(q, k, v, spatial)` over per-head tensors.

    Uses the layer's weights; BN in training mode (batch statistics, biased variance). Positions P go to the
    inputs of Wθ and Wφ, or with `pos_encoding_placement="input"` onto x itself (all projections and the
    residual see x + P); `direction` divides by the norm plus the layer's `direction_eps`.
    """
    batch, channels, *spatial = x.shape
    n = math.prod(spatial)
    table = sincos(channels, spatial).to(x.dtype) if layer.pos_encoding == "sincos" else None
    if table is not None and layer.pos_encoding_placement == "input":
        x, table = x + table.reshape(1, channels, *spatial), None
    flat = x.reshape(batch, channels, n)
    w_theta, w_phi, w_g, w_z = (conv.weight[:, :, 0] for conv in (layer.theta, layer.phi, layer.g, layer.z))
    shifted = flat if table is None else flat + table
    q = torch.einsum("ec,bcn->ben", w_theta, shifted)
    k = torch.einsum("ec,bcn->ben", w_phi, shifted)
    v = torch.einsum("ec,bcn->ben", w_g, flat)
    heads, d = layer.heads, layer.head_channels
    q, k, v = (t.reshape(batch, heads, d, n) for t in (q, k, v))
    if getattr(layer, "subsample", False):
        pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[len(spatial)]
        k, v = (pool(t.reshape(batch, heads * d, *spatial), 2, ceil_mode=True).reshape(batch, heads, d, -1)
                for t in (k, v))
    geometry = getattr(layer, "geometry", "full")
    if geometry == "magnitude":
        q, k = q.norm(dim=2, keepdim=True), k.norm(dim=2, keepdim=True)
    elif geometry == "direction":
        eps = layer.direction_eps
        q, k = q / (q.norm(dim=2, keepdim=True) + eps), k / (k.norm(dim=2, keepdim=True) + eps)
    a = core(q, k, v, spatial).reshape(batch, heads * d, n)
    y = torch.einsum("ce,ben->bcn", w_z, a)
    mean = y.mean(dim=(0, 2), keepdim=True)
    var = y.var(dim=(0, 2), unbiased=False, keepdim=True)
    y = (y - mean) / torch.sqrt(var + layer.bn.eps) * layer.bn.weight[:, None] + layer.bn.bias[:, None]
    return x + y.reshape(x.shape)


def _softmax(logits):
    top = max(logits)
    weights = [torch.exp(logit - top) for logit in logits]
    total = sum(weights)
    return [w / total for w in weights]


def cross_covariance(q, k, v, temperature):
    """A[r, c] = softmax_c(τ_h Σ_n q̂[r, n] k̂[c, n]), rows of q, k divided by their norms over n; a = A v."""
    batch, heads, d, n = q.shape
    out = q.new_zeros(batch, heads, d, n)
    for b in range(batch):
        for h in range(heads):
            qh = [q[b, h, r] / torch.sqrt(sum(t * t for t in q[b, h, r])) for r in range(d)]
            kh = [k[b, h, c] / torch.sqrt(sum(t * t for t in k[b, h, c])) for c in range(d)]
            for r in range(d):
                weights = _softmax([temperature[h] * torch.dot(qh[r], kh[c]) for c in range(d)])
                for c in range(d):
                    out[b, h, r] += weights[c] * v[b, h, c]
    return out


def efficient(q, k, v):
    """a_i = Σ_j (ρ_q(q_i)·ρ_k(k_j)) v_j: ρ_q a softmax over channels, ρ_k over positions."""
    batch, heads, d, n = q.shape
    out = q.new_zeros(batch, heads, v.shape[2], n)
    for b in range(batch):
        for h in range(heads):
            rho_k = [_softmax([k[b, h, c, j] for j in range(n)]) for c in range(d)]  # [c][j]
            for i in range(n):
                rho_q = _softmax([q[b, h, c, i] for c in range(d)])
                for j in range(n):
                    out[b, h, :, i] += sum(rho_q[c] * rho_k[c][j] for c in range(d)) * v[b, h, :, j]
    return out


def linear(q, k, v, eps=1e-6):
    """a_i = Σ_j (φ(q_i)·φ(k_j)) v_j / (Σ_j φ(q_i)·φ(k_j) + ε), φ(t) = elu(t) + 1."""
    phi = lambda t: torch.where(t > 0, t + 1, torch.exp(t))  # noqa: E731  (elu(t) + 1 written out)
    batch, heads, _, n = q.shape
    out = q.new_zeros(batch, heads, v.shape[2], n)
    for b in range(batch):
        for h in range(heads):
            for i in range(n):
                kernel = [torch.dot(phi(q[b, h, :, i]), phi(k[b, h, :, j])) for j in range(n)]
                total = sum(kernel) + eps
                for j in range(n):
                    out[b, h, :, i] += kernel[j] / total * v[b, h, :, j]
    return out


def global_context(k, v):
    """Every position gets Σ_j softmax_j(Σ_c k[c, j]) v_j."""
    batch, heads, _, n = k.shape
    out = k.new_zeros(batch, heads, v.shape[2], n)
    for b in range(batch):
        for h in range(heads):
            weights = _softmax([k[b, h, :, j].sum() for j in range(n)])
            context = sum(weights[j] * v[b, h, :, j] for j in range(n))
            for i in range(n):
                out[b, h, :, i] = context
    return out
