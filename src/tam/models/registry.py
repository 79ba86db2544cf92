"""The model registry: one decorated builder function per variant, as in timm.

Each entry carries the metadata that the CLI, training and benchmarks read without building the model.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Callable

from torch import nn

from tam.presets import apply_preset


@dataclass(frozen=True)
class ModelInfo:
    """What is known about a registered model before it is built.

    Attributes:
        name: the registry name, e.g. ``"preresnet56"``.
        input_size: ``(channels, height, width)`` the model is designed for.
        num_classes: default number of classes (CIFAR-10: 10, Tiny-ImageNet: 200).
        num_stages: number of stages, i.e. the length of ``attention_blocks``.
        dataset: the data the variant is meant for: ``"cifar"`` or ``"tiny-imagenet"``.
    """

    name: str
    input_size: tuple[int, int, int]
    num_classes: int
    num_stages: int
    dataset: str


_builders: dict[str, Callable[..., nn.Module]] = {}
_infos: dict[str, ModelInfo] = {}


def register_model(*, input_size: tuple[int, int, int], num_classes: int, num_stages: int, dataset: str):
    """Register the decorated builder under its function name, with its :class:`ModelInfo`.

    Example (as ``tam.models.preresnet`` registers its builders; the registry is global, so this is not run)::

        @register_model(input_size=(3, 32, 32), num_classes=10, num_stages=3, dataset="cifar")
        def preresnet20(**kwargs):
            return PreResNet(PreActBasic, (3, 3, 3), (16, 32, 64), stem_width=16, **kwargs)
    """

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _builders:
            raise ValueError(f"model {name!r} is already registered")
        _builders[name] = builder
        _infos[name] = ModelInfo(name, tuple(input_size), num_classes, num_stages, dataset)
        return builder

    return decorate


def list_models(pattern: str | None = None) -> list[str]:
    """Names of the registered models, in registration order, optionally filtered by a glob ``pattern``.

    Example:
        >>> list_models("wrn*")
        ['wrn16_8', 'wrn28_10']
    """
    return [name for name in _builders if pattern is None or fnmatch.fnmatchcase(name, pattern)]


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered model; ``ValueError`` listing what exists for an unknown name."""
    if name not in _infos:
        close = difflib.get_close_matches(str(name), _infos, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Available models: {', '.join(_infos)}.")
    return _infos[name]


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    attention: str | None = None,
    attention_blocks: tuple[int, ...] | None = None,
    preset: str | None = None,
    **kwargs,
) -> nn.Module:
    """Build a registered model by name, optionally with attention blocks.

    Args:
        name: a name from :func:`list_models`.
        num_classes: size of the classifier; defaults to the model's :attr:`ModelInfo.num_classes`.
        attention: ``None`` (or ``"none"``) for the plain backbone, else a kind of
            :func:`tam.create_attention`: ``"tam"``, ``"nl"`` or ``"cc"``.
        attention_blocks: stacked attention blocks per stage, placed before the last residual unit of
            that stage, e.g. ``(0, 1, 1)``; defaults to one block in every stage but the first.
        preset: a name from :data:`tam.presets.PRESETS` (e.g. ``"icip2022"``, the thesis code exactly), which
            sets backbone and attention conventions; an option given here that contradicts it is refused.
        **kwargs: backbone options (``in_chans``, ``drop_rate``, ``shortcut_input``, ``classifier_init``) and
            attention options (``heads``, ``embed_channels`` or ``embed_ratio``, ``normalization``, ...; see
            :func:`tam.create_attention`).

    Example:
        >>> model = create_model("preresnet56", num_classes=100, attention="tam", attention_blocks=(0, 1, 1), heads=4)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 100])
    """
    info = model_info(name)
    if num_classes is None:
        num_classes = info.num_classes
    if preset is not None:
        kwargs = apply_preset(preset, kwargs, model=name)
        if attention not in (None, "none"):
            kwargs["preset"] = preset  # the attention options, resolved by create_attention for the kind
    return _builders[name](num_classes=num_classes, attention=attention, attention_blocks=attention_blocks, **kwargs)
