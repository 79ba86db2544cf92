"""Pre-activation residual units (He et al., "Identity Mappings in Deep Residual Networks", 2016).

Each unit is ``x + F(x)`` with ``F`` = (BN → ReLU → conv) repeated. When the shape changes, the shortcut is a
1×1 convolution. By default it reads the pre-activated input ``relu(bn1(x))``, as in the paper and in the Wide
ResNet code; ``shortcut_input="raw"`` gives it the unit's input ``x`` itself, as the CIFAR and Tiny-ImageNet
PreResNets of the thesis code do.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

SHORTCUT_INPUTS = ("preactivated", "raw")


def check_shortcut_input(value: object) -> str:
    """Return ``value`` if it is one of :data:`SHORTCUT_INPUTS`; else raise naming ``shortcut_input``."""
    if value not in SHORTCUT_INPUTS:
        raise ValueError(f"shortcut_input must be one of {SHORTCUT_INPUTS}, got {value!r}")
    return value


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)


class _PreActUnit(nn.Module):
    """What both units share: the choice of what a projection shortcut reads."""

    shortcut: nn.Conv2d | None

    def __init__(self, shortcut_input: str):
        super().__init__()
        self.shortcut_input = check_shortcut_input(shortcut_input)

    def _shortcut(self, x: Tensor, preactivated: Tensor) -> Tensor:
        """``x`` itself, or the projection of ``relu(bn1(x))`` (``preactivated``) or of ``x`` (``raw``)."""
        if self.shortcut is None:
            return x
        return self.shortcut(preactivated if self.shortcut_input == "preactivated" else x)


class PreActBasic(_PreActUnit):
    """Two 3×3 convolutions; dropout between them when ``drop_rate > 0`` (Wide ResNet).

    Args:
        in_channels: channels of the input.
        width: channels of both convolutions; the output has ``width * expansion = width`` channels.
        stride: stride of the first convolution (and of the shortcut).
        drop_rate: dropout probability between the two convolutions.
        shortcut_input: what a projection shortcut reads: ``"preactivated"`` (``relu(bn1(x))``) | ``"raw"`` (``x``).

    Shape:
        ``[B, in_channels, H, W]`` -> ``[B, width, H/stride, W/stride]``

    Example:
        >>> PreActBasic(16, 32, stride=2)(torch.randn(2, 16, 32, 32)).shape
        torch.Size([2, 32, 16, 16])
    """

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, drop_rate: float = 0.0,
                 shortcut_input: str = "preactivated"):
        super().__init__(shortcut_input)
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = _conv(in_channels, width, 3, stride)
        self.norm2 = nn.BatchNorm2d(width)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv2 = _conv(width, width, 3)
        self.shortcut = _conv(in_channels, width, 1, stride) if stride != 1 or in_channels != width else None

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.norm1(x))
        shortcut = self._shortcut(x, out)
        out = self.conv1(out)
        out = self.conv2(self.drop(F.relu(self.norm2(out))))
        return out + shortcut


class PreActBottleneck(_PreActUnit):
    """1×1 reduce, 3×3 (carrying the stride), 1×1 expand ×4.

    Args:
        in_channels: channels of the input.
        width: channels of the inner convolutions; the output has ``4 * width`` channels.
        stride: stride of the 3×3 convolution (and of the shortcut).
        drop_rate: dropout probability before the last convolution.
        shortcut_input: what a projection shortcut reads: ``"preactivated"`` (``relu(bn1(x))``) | ``"raw"`` (``x``).

    Shape:
        ``[B, in_channels, H, W]`` -> ``[B, 4 * width, H/stride, W/stride]``

    Example:
        >>> PreActBottleneck(64, 32, stride=2)(torch.randn(2, 64, 32, 32)).shape
        torch.Size([2, 128, 16, 16])
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, drop_rate: float = 0.0,
                 shortcut_input: str = "preactivated"):
        super().__init__(shortcut_input)
        out_channels = width * self.expansion
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = _conv(in_channels, width, 1)
        self.norm2 = nn.BatchNorm2d(width)
        self.conv2 = _conv(width, width, 3, stride)
        self.norm3 = nn.BatchNorm2d(width)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv3 = _conv(width, out_channels, 1)
        self.shortcut = (
            _conv(in_channels, out_channels, 1, stride) if stride != 1 or in_channels != out_channels else None
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.norm1(x))
        shortcut = self._shortcut(x, out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.norm2(out)))
        out = self.conv3(self.drop(F.relu(self.norm3(out))))
        return out + shortcut
