"""Pre-activation ResNets for CIFAR (32×32) and Tiny-ImageNet (56×56), with attention placed per stage."""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from tam.layers import attention_kinds, create_attention
from tam.layers.shell import check_int
from tam.models.registry import register_model
from tam.models.units import PreActBasic, PreActBottleneck, check_shortcut_input


CLASSIFIER_INITS = ("pytorch", "kaiming")


def _init_backbone(module: nn.Module) -> None:
    """Kaiming fan-out for convolutions, BN at (γ=1, β=0), zero classifier bias."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.zeros_(module.bias)


def _init_classifier(fc: nn.Linear, classifier_init: str) -> None:
    """``"kaiming"``: Kaiming fan-out normal weights like the convolutions, and nn.Linear's own bias init, as the
    thesis code has it; ``"pytorch"`` keeps nn.Linear's weight init (the bias is zeroed by :func:`_init_backbone`)."""
    if classifier_init == "kaiming":
        fc.reset_parameters()  # nn.Linear's own bias draw
        nn.init.kaiming_normal_(fc.weight, mode="fan_out", nonlinearity="relu")


class PreResNet(nn.Module):
    """A pre-activation ResNet: stem conv, stages of residual units, BN → ReLU → global pool → linear.

    With ``attention``, stage ``i`` gets ``attention_blocks[i]`` stacked attention blocks, registered as
    ``stages.{i}.attention`` and run before the stage's last unit. Backbone parameter names do not depend on
    the attention, so a plain backbone's state dict loads into an attention model (``strict=False``).

    Args:
        unit: :class:`PreActBasic` or :class:`PreActBottleneck`.
        depths: number of units per stage; the first stage keeps the resolution, each later one halves it.
        widths: unit width per stage; a stage outputs ``width * unit.expansion`` channels.
        stem_width: output channels of the stem convolution.
        stem_kernel: kernel size of the stride-1 stem convolution.
        num_classes: size of the classifier.
        in_chans: input channels.
        drop_rate: dropout inside each unit (Wide ResNet); off by default.
        shortcut_input: what the projection shortcuts read: ``"preactivated"`` (``relu(bn1(x))``, He et al.) |
            ``"raw"`` (the unit's input ``x``, as the thesis code's PreResNets).
        classifier_init: ``"pytorch"`` (nn.Linear's weight init, zero bias) | ``"kaiming"`` (Kaiming fan-out
            normal weight, nn.Linear's bias init, as the thesis code).
        attention: ``None`` / ``"none"``, or a kind of :func:`tam.create_attention` (``"tam"``, ``"nl"``, ``"cc"``, ...).
        attention_blocks: attention blocks per stage, one non-negative int per stage; defaults to one
            block in every stage but the first.
        **attention_options: passed to :func:`tam.create_attention` (``heads``, ``embed_channels``, ...).

    Shape:
        ``[B, in_chans, H, W]`` -> ``[B, num_classes]``

    Example:
        >>> model = PreResNet(PreActBasic, (3, 3, 3), (16, 32, 64), stem_width=16, attention="tam")
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        unit: type[PreActBasic] | type[PreActBottleneck],
        depths: Sequence[int],
        widths: Sequence[int],
        *,
        stem_width: int,
        stem_kernel: int = 3,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        shortcut_input: str = "preactivated",
        classifier_init: str = "pytorch",
        attention: str | None = None,
        attention_blocks: Sequence[int] | None = None,
        **attention_options,
    ):
        super().__init__()
        attention, attention_blocks = _check_attention(len(depths), attention, attention_blocks, attention_options)
        self.num_classes = check_int("num_classes", num_classes, 1)
        check_int("in_chans", in_chans, 1)
        if not 0 <= drop_rate < 1:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
        check_shortcut_input(shortcut_input)
        if classifier_init not in CLASSIFIER_INITS:
            raise ValueError(f"classifier_init must be one of {CLASSIFIER_INITS}, got {classifier_init!r}")
        self.attention = attention
        self.attention_blocks = attention_blocks

        self.stem = nn.Conv2d(in_chans, stem_width, stem_kernel, padding=stem_kernel // 2, bias=False)
        channels = stem_width
        stages = []
        for i, (depth, width) in enumerate(zip(depths, widths)):
            units = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                units.append(unit(channels, width, stride=stride, drop_rate=drop_rate, shortcut_input=shortcut_input))
                channels = width * unit.expansion
            stages.append(nn.Sequential(*units))
        self.stages = nn.ModuleList(stages)
        self.norm = nn.BatchNorm2d(channels)
        self.num_features = channels
        self.fc = nn.Linear(channels, num_classes)
        self.apply(_init_backbone)
        _init_classifier(self.fc, classifier_init)

        # Added after the backbone init: attention blocks keep their own (identity) init.
        for stage, blocks in zip(self.stages, attention_blocks):
            if blocks:
                last_name, last = list(stage.named_children())[-1]
                channels = last.norm1.num_features
                del stage[-1]
                stage.add_module("attention", create_attention(attention, channels, blocks=blocks, **attention_options))
                stage.add_module(last_name, last)

    def forward_features(self, x: Tensor) -> Tensor:
        """Shape: ``[B, in_chans, H, W]`` -> ``[B, num_features, H/2^(stages-1), W/2^(stages-1)]``."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return F.relu(self.norm(x))

    def forward_head(self, x: Tensor) -> Tensor:
        """Shape: ``[B, num_features, h, w]`` -> ``[B, num_classes]``."""
        return self.fc(x.mean(dim=(2, 3)))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _check_attention(num_stages, attention, attention_blocks, attention_options) -> tuple[str | None, tuple[int, ...]]:
    """Validate the attention arguments; return ``(kind or None, blocks per stage)``."""
    if attention is None or attention == "none":
        if attention_options:
            raise ValueError(
                f"unexpected options {sorted(attention_options)}: backbone options are num_classes, in_chans, "
                "drop_rate, shortcut_input, classifier_init; attention options (heads, embed_channels, ...) need "
                f"an attention kind, one of {attention_kinds()}"
            )
        if attention_blocks is not None and any(attention_blocks):
            raise ValueError(
                f"attention_blocks={tuple(attention_blocks)} needs an attention kind, one of {attention_kinds()}"
            )
        return None, (0,) * num_stages
    kinds = attention_kinds(include_none=True, benchmark=True)
    if not isinstance(attention, str) or attention not in kinds:
        raise ValueError(f"attention must be None or one of {kinds}, got {attention!r}")
    if attention_blocks is None:
        return attention, (0,) + (1,) * (num_stages - 1)
    blocks = tuple(attention_blocks) if isinstance(attention_blocks, (tuple, list)) else None
    if (
        blocks is None
        or len(blocks) != num_stages
        or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in blocks)
    ):
        raise ValueError(
            f"attention_blocks must be {num_stages} non-negative ints, one per stage, e.g. "
            f"{(0,) + (1,) * (num_stages - 1)}; got {attention_blocks!r}"
        )
    return attention, blocks


def _cifar(depth: int, **kwargs) -> PreResNet:
    # As in the thesis code: bottleneck units from depth 44 up, with n = (depth - 2) // 9 units per stage.
    if depth >= 44:
        return PreResNet(PreActBottleneck, ((depth - 2) // 9,) * 3, (16, 32, 64), stem_width=16, **kwargs)
    return PreResNet(PreActBasic, ((depth - 2) // 6,) * 3, (16, 32, 64), stem_width=16, **kwargs)


def _tiny_imagenet(unit, depths, **kwargs) -> PreResNet:
    return PreResNet(unit, depths, (64, 128, 256, 512), stem_width=64, stem_kernel=7, **kwargs)


_CIFAR = dict(input_size=(3, 32, 32), num_classes=10, num_stages=3, dataset="cifar")
_TINY = dict(input_size=(3, 56, 56), num_classes=200, num_stages=4, dataset="tiny-imagenet")


@register_model(**_CIFAR)
def preresnet20(**kwargs) -> PreResNet:
    """PreResNet-20: 3 basic units per stage, 16/32/64 channels."""
    return _cifar(20, **kwargs)


@register_model(**_CIFAR)
def preresnet32(**kwargs) -> PreResNet:
    """PreResNet-32: 5 basic units per stage, 16/32/64 channels."""
    return _cifar(32, **kwargs)


@register_model(**_CIFAR)
def preresnet44(**kwargs) -> PreResNet:
    """PreResNet-44 as in the thesis code: 4 bottleneck units per stage, 64/128/256 channels."""
    return _cifar(44, **kwargs)


@register_model(**_CIFAR)
def preresnet56(**kwargs) -> PreResNet:
    """PreResNet-56: 6 bottleneck units per stage, 64/128/256 channels."""
    return _cifar(56, **kwargs)


@register_model(**_CIFAR)
def preresnet110(**kwargs) -> PreResNet:
    """PreResNet-110: 12 bottleneck units per stage, 64/128/256 channels."""
    return _cifar(110, **kwargs)


@register_model(**_CIFAR)
def preresnet164(**kwargs) -> PreResNet:
    """PreResNet-164 (He et al. 2016): 18 bottleneck units per stage, 64/128/256 channels, 1.70M parameters."""
    return _cifar(164, **kwargs)


@register_model(**_TINY)
def preresnet18(**kwargs) -> PreResNet:
    """PreResNet-18 for 56×56 crops: basic units (2, 2, 2, 2), 64-512 channels, 7×7 stride-1 stem."""
    return _tiny_imagenet(PreActBasic, (2, 2, 2, 2), **kwargs)


@register_model(**_TINY)
def preresnet34(**kwargs) -> PreResNet:
    """PreResNet-34 for 56×56 crops: basic units (3, 4, 6, 3), 64-512 channels, 7×7 stride-1 stem."""
    return _tiny_imagenet(PreActBasic, (3, 4, 6, 3), **kwargs)


@register_model(**_TINY)
def preresnet50(**kwargs) -> PreResNet:
    """PreResNet-50 for 56×56 crops: bottleneck units (3, 4, 6, 3), 256-2048 channels, 7×7 stride-1 stem."""
    return _tiny_imagenet(PreActBottleneck, (3, 4, 6, 3), **kwargs)
