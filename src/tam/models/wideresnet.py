"""Wide ResNets for CIFAR (Zagoruyko & Komodakis, BMVC 2016): pre-activation basic units, widened k times."""

from __future__ import annotations

from tam.models.preresnet import PreResNet
from tam.models.registry import register_model
from tam.models.units import PreActBasic


def _wide_resnet(depth: int, widen: int, **kwargs) -> PreResNet:
    # WRN-d-k: (d - 4) / 6 units per stage at 16k/32k/64k channels after a 16-channel stem.
    widths = (16 * widen, 32 * widen, 64 * widen)
    return PreResNet(PreActBasic, ((depth - 4) // 6,) * 3, widths, stem_width=16, **kwargs)


_CIFAR = dict(input_size=(3, 32, 32), num_classes=10, num_stages=3, dataset="cifar")


@register_model(**_CIFAR)
def wrn16_8(**kwargs) -> PreResNet:
    """WRN-16-8: 2 units per stage, 128/256/512 channels, 11.0M parameters. ``drop_rate`` enables dropout."""
    return _wide_resnet(16, 8, **kwargs)


@register_model(**_CIFAR)
def wrn28_10(**kwargs) -> PreResNet:
    """WRN-28-10: 4 units per stage, 160/320/640 channels, 36.5M parameters. ``drop_rate`` enables dropout."""
    return _wide_resnet(28, 10, **kwargs)
