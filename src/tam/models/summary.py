"""What a model costs and where its attention sits: parameters, FLOPs at its input size, attention sites."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from tam.layers import AttentionBlock, kind_of


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# FlopCounterMode knows the CUDA fused attention kernels but not the CPU one, which it would count as 0.
_EXTRA_FLOP_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}


@dataclass(frozen=True)
class AttentionSite:
    """One place holding attention: a block, or a stack of blocks in one ``nn.Sequential``.

    Attributes:
        name: module name, e.g. ``"stages.1.attention"``.
        kind: the registered kind of the blocks (``"tam"``, ``"nl"``, ..., ``"floor"``).
        blocks: number of stacked blocks.
        channels: channels of the blocks.
        heads: heads of the blocks.
        spatial: spatial size of the input at the model's input size, e.g. ``(16, 16)``.
        embed: embed width ``E`` of the blocks (shown when it is not the default ``C // 2``).
    """

    name: str
    kind: str
    blocks: int
    channels: int
    heads: int
    spatial: tuple[int, ...]
    embed: int

    def __str__(self) -> str:
        spatial = "×".join(map(str, self.spatial))
        embed = "" if self.embed == max(self.channels // 2, 1) else f", E={self.embed}"
        return f"{self.name}: {self.blocks}×{self.kind} (C={self.channels}{embed}, h={self.heads}) @ {spatial}"


@dataclass(frozen=True)
class ModelSummary:
    """Parameters, forward FLOPs at batch 1 (2 per multiply-add) and attention sites of a model."""

    params: int
    flops: int
    input_size: tuple[int, ...]
    sites: tuple[AttentionSite, ...]


def summarize(model: nn.Module, input_size: tuple[int, ...]) -> ModelSummary:
    """Count parameters, count forward FLOPs on one eval-mode pass of batch 1, and locate the attention.

    Args:
        model: any network; attention is found as :class:`tam.layers.AttentionBlock` instances.
        input_size: input without the batch dimension, e.g. ``(3, 32, 32)``.

    Example:
        >>> summarize(tam.create_model("preresnet20"), (3, 32, 32)).params
        272282
    """
    modules = dict(model.named_modules())
    sites: dict[str, list[AttentionBlock]] = {}
    for name, module in modules.items():
        if isinstance(module, AttentionBlock):
            parent_name = name.rpartition(".")[0]
            parent = modules[parent_name]
            stacked = isinstance(parent, nn.Sequential) and all(isinstance(m, AttentionBlock) for m in parent)
            sites.setdefault(parent_name if stacked else name, []).append(module)

    spatial: dict[str, tuple[int, ...]] = {}

    def record(name):
        def hook(module, args):
            spatial.setdefault(name, tuple(args[0].shape[2:]))

        return hook

    handles = [modules[name].register_forward_pre_hook(record(name)) for name in sites]
    reference = next(model.parameters())
    training = model.training
    try:
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS) as counter:
            model(torch.zeros(1, *input_size, device=reference.device, dtype=reference.dtype))
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return ModelSummary(
        params=sum(p.numel() for p in model.parameters()),
        flops=counter.get_total_flops(),
        input_size=tuple(input_size),
        sites=tuple(
            AttentionSite(name, kind_of(b[0]), len(b), b[0].channels, b[0].heads, spatial[name], b[0].embed_channels)
            for name, b in sites.items()
        ),
    )
