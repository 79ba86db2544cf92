"""The thesis code's attention block and CIFAR PreResNet, written out from their formulas, in float64.

The code is the ICIP 2022 follow-up's published implementation (github.com/YooshinCho/pytorch_RethinkingSFM:
``models/nlblock.py``, classes ``attention`` (Non-local, "base") and ``attention_T`` (transposed, "T") inside
``nlblock``; ``models/preresnet.py``). Nothing here is taken from tam: parameters are read by the names that
code's state dicts use, and :func:`authors_state_dict` maps a tam model's state dict onto those names, so the same
weights can also be loaded into the original.

Per head of width d (``d = C/2`` for one head, ``C/h`` for more), over N positions:

    x ← x + P                                     P: the 2-D sinusoid table, once per stack of blocks
    q, k, v = θ x, φ x, g x                       per head [d, N]; magnitude q ← ‖q‖; direction q ← q/‖q‖
    Non-local:   A = softmax_j(qᵢ·kⱼ)  or  (qᵢ·kⱼ)/√N;          aᵢ = Σⱼ Aᵢⱼ vⱼ
    transposed:  M = softmax_c(v kᵀ)   or  (v kᵀ)/√N;           a = M q / √d   (d the head width)
    y = x + BN(z a)                               BN with batch statistics
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F


def positions(channels: int, height: int, width: int) -> torch.Tensor:
    """P ``[C, H, W]``: channel c < C/2 follows the row i, channel C/2 + c the column j; within a half,
    channel c is sin (c even) or cos (c odd) of ``p / 10000^(2·⌊c/2⌋ / (C/2))``."""
    half = channels // 2
    table = torch.zeros(channels, height, width, dtype=torch.float64)
    for c in range(channels):
        within = c % half
        period = 10000.0 ** (2 * (within // 2) / half)
        for i in range(height):
            for j in range(width):
                angle = (i if c < half else j) / period
                table[c, i, j] = math.sin(angle) if within % 2 == 0 else math.cos(angle)
    return table


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    weights = torch.exp(logits - logits.max(dim=-1, keepdim=True).values)
    return weights / weights.sum(dim=-1, keepdim=True)


def _batch_norm(x: torch.Tensor, params: dict, prefix: str, eps: float = 1e-5) -> torch.Tensor:
    """BN over all but the channel axis of ``[B, C, ...]``, with the batch's mean and biased variance."""
    dims = [0, *range(2, x.dim())]
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    scale, shift = params[prefix + "weight"].reshape(shape), params[prefix + "bias"].reshape(shape)
    return (x - mean) / torch.sqrt(var + eps) * scale + shift


def block(params: dict, prefix: str, x: torch.Tensor, *, kind: str, heads: int, softmax: bool,
          geometry: str) -> torch.Tensor:
    """One attention block (``attention`` for ``kind="nl"``, ``attention_T`` for ``"tam"``) on ``[B, C, H, W]``.

    ``params[prefix + "theta_conv.weight"]`` etc.: the 1×1 convolutions ``[h·d, C, 1, 1]`` and ``z_bn``.
    """
    batch, channels, height, width = x.shape
    n = height * width
    flat = x.reshape(batch, channels, n)

    def project(name: str) -> torch.Tensor:
        weight = params[prefix + name + ".weight"][:, :, 0, 0]
        return torch.einsum("ec,bcn->ben", weight, flat).reshape(batch, heads, -1, n)

    q, k, v = project("theta_conv"), project("pi_conv"), project("g_conv")
    d = q.shape[2]
    if geometry == "magnitude":
        q, k = (torch.sqrt((t**2).sum(dim=2, keepdim=True)) for t in (q, k))
    elif geometry == "direction":
        q, k = (t / torch.sqrt((t**2).sum(dim=2, keepdim=True)) for t in (q, k))
    if kind == "nl":
        logits = torch.einsum("bhci,bhcj->bhij", q, k)
        weights = _softmax(logits) if softmax else logits / math.sqrt(n)
        a = torch.einsum("bhij,bhcj->bhci", weights, v)
    else:
        product = torch.einsum("bhrn,bhcn->bhrc", v, k)
        weights = _softmax(product) if softmax else product / math.sqrt(n)
        a = torch.einsum("bhrc,bhcn->bhrn", weights, q) / math.sqrt(d)
    out = torch.einsum("ce,ben->bcn", params[prefix + "z_conv.weight"][:, :, 0, 0], a.reshape(batch, -1, n))
    return x + _batch_norm(out, params, prefix + "z_bn.").reshape(x.shape)


def stack(params: dict, prefix: str, x: torch.Tensor, *, blocks: int, positional: bool, **options) -> torch.Tensor:
    """``nlblock``: the table added once to the input, then ``blocks`` blocks ``prefix + "head.{i}."``."""
    if positional:
        x = x + positions(*x.shape[1:]).to(x.dtype)
    for i in range(blocks):
        x = block(params, f"{prefix}head.{i}.", x, **options)
    return x


def _unit(params: dict, prefix: str, x: torch.Tensor, stride: int, bottleneck: bool) -> torch.Tensor:
    """A pre-activation unit whose projection shortcut reads the unit's input ``x`` itself."""
    out = F.relu(_batch_norm(x, params, prefix + "bn1."))
    shortcut = x
    if prefix + "downsample.0.weight" in params:
        shortcut = F.conv2d(x, params[prefix + "downsample.0.weight"], stride=stride)
    if bottleneck:
        out = F.conv2d(out, params[prefix + "conv1.weight"])
        out = F.relu(_batch_norm(out, params, prefix + "bn2."))
        out = F.conv2d(out, params[prefix + "conv2.weight"], stride=stride, padding=1)
        out = F.relu(_batch_norm(out, params, prefix + "bn3."))
        out = F.conv2d(out, params[prefix + "conv3.weight"])
    else:
        out = F.conv2d(out, params[prefix + "conv1.weight"], stride=stride, padding=1)
        out = F.relu(_batch_norm(out, params, prefix + "bn2."))
        out = F.conv2d(out, params[prefix + "conv2.weight"], padding=1)
    return out + shortcut


def preresnet(params: dict, x: torch.Tensor, *, depth: int, blocks: tuple[int, int, int] = (0, 0, 0),
              positional: bool = False, **options) -> torch.Tensor:
    """``PreResNet`` for CIFAR: bottleneck units from depth 44 ((depth-2)/9 per stage), else basic ((depth-2)/6);
    stage s holds ``blocks[s]`` attention blocks (``layer{s+1}.nonlocal``) before its last unit.

    Shape: ``[B, 3, 32, 32]`` -> ``[B, classes]``.
    """
    bottleneck = depth >= 44
    units = (depth - 2) // (9 if bottleneck else 6)
    x = F.conv2d(x, params["conv1.weight"], padding=1)
    for stage in range(3):
        for i in range(units):
            if i == units - 1 and blocks[stage]:
                x = stack(params, f"layer{stage + 1}.nonlocal.", x, blocks=blocks[stage], positional=positional,
                          **options)
            stride = 2 if stage > 0 and i == 0 else 1
            x = _unit(params, f"layer{stage + 1}.{i}.", x, stride, bottleneck)
    x = F.relu(_batch_norm(x, params, "bn."))
    return x.mean(dim=(2, 3)) @ params["fc.weight"].T + params["fc.bias"]


_ATTENTION_NAMES = {"theta": "theta_conv", "phi": "pi_conv", "g": "g_conv", "z": "z_conv", "bn": "z_bn"}
_UNIT_NAMES = {"norm1": "bn1", "norm2": "bn2", "norm3": "bn3", "shortcut": "downsample.0"}


def authors_block_state_dict(state: dict) -> dict:
    """The state dict of a tam block or stack (:func:`tam.create_attention`) under the names of the thesis
    code's ``nlblock``: ``[b.]theta.weight`` -> ``head.b.theta_conv.weight`` etc., 1×1 weights 4-D."""
    return {
        re.sub(r"^stages\.0\.attention\.", "", key).replace("layer1.nonlocal.", ""): value
        for key, value in authors_state_dict({f"stages.0.attention.{k}": v for k, v in state.items()}).items()
    }


def authors_state_dict(state: dict) -> dict:
    """A tam CIFAR PreResNet's state dict under the thesis code's names (1×1 attention weights 4-D).

    ``stem`` -> ``conv1``; ``stages.s.i`` -> ``layer{s+1}.i`` with ``norm1`` -> ``bn1``, ``shortcut`` ->
    ``downsample.0``; ``stages.s.attention[.b]`` -> ``layer{s+1}.nonlocal.head.b`` with ``theta``/``phi``/``g``/
    ``z``/``bn`` -> ``theta_conv``/``pi_conv``/``g_conv``/``z_conv``/``z_bn``; ``norm`` -> ``bn``.
    """
    mapped = {}
    for key, value in state.items():
        name = re.sub(r"^stem\.", "conv1.", key)
        name = re.sub(r"^norm\.", "bn.", name)
        match = re.match(r"^stages\.(\d+)\.attention\.(?:(\d+)\.)?(\w+)\.(.+)$", name)
        if match:
            stage, index, module, rest = match.groups()
            name = f"layer{int(stage) + 1}.nonlocal.head.{index or 0}.{_ATTENTION_NAMES[module]}.{rest}"
            value = value[..., None] if value.dim() == 3 else value
        else:
            match = re.match(r"^stages\.(\d+)\.(\d+)\.(\w+)\.(.+)$", name)
            if match:
                stage, index, module, rest = match.groups()
                name = f"layer{int(stage) + 1}.{index}.{_UNIT_NAMES.get(module, module)}.{rest}"
        mapped[name] = value
    return mapped
