"""Insert attention blocks into any existing CNN, after modules named by the user."""

from __future__ import annotations

import difflib
from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from tam.layers import create_attention


class _ProbeDone(Exception):
    """Raised by the probe hooks once every site has been seen, to skip the rest of the forward pass."""


def insert_attention(
    model: nn.Module,
    after: str | Sequence[str],
    *,
    kind: str,
    blocks: int = 1,
    input_size: tuple[int, ...] = (3, 224, 224),
    **options,
) -> nn.Module:
    """Insert ``blocks`` stacked attention blocks after each named module of ``model``, in place.

    The channel count of each site is read from the module's output on one forward pass (batch 1, eval
    mode, no grad) at ``input_size``; the pass stops once every site has been seen. A site must output a
    feature map ``[B, C, *S]`` with as many spatial dims as the input has (``len(input_size) - 1``): a
    token sequence ``[B, N, C]`` (a ViT block's output) is refused, since its dim 1 is not channels. Each named module
    ``m`` is replaced by ``nn.Sequential(OrderedDict(module=m, attention=...))``, so its parameters move
    from ``<name>.*`` to ``<name>.module.*``: load pretrained weights before inserting. The attention
    blocks are exact identities at init, so the model computes the same function until trained.

    Args:
        model: any network whose named modules output ``[B, C, *S]`` feature maps at the chosen sites.
        after: a name, or names, from ``model.named_modules()``, e.g. ``["layer3.5", "layer4.2"]``.
        kind: ``"tam"``, ``"nl"`` or ``"cc"`` (see :func:`tam.create_attention`).
        blocks: stacked attention blocks per site.
        input_size: the input of the probing pass, without the batch dimension.
        **options: attention options (``heads``, ``embed_channels``, ...); the blocks are created on the
            device and in the dtype of each site's output unless ``device``/``dtype`` say otherwise.

    Returns:
        ``model`` itself.

    Example (on a torchvision ResNet-18, ``after=["layer3.1", "layer4.1"]`` gives blocks of 256 and 512
    channels):
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(),
        ...                           torch.nn.Conv2d(64, 128, 3, stride=2, padding=1))
        >>> net = insert_attention(net, after=["0", "2"], kind="tam", heads=4, input_size=(3, 32, 32))
        >>> net[2].attention.channels, net(torch.randn(2, 3, 32, 32)).shape
        (128, torch.Size([2, 128, 16, 16]))
    """
    names = [after] if isinstance(after, str) else list(after)
    if not names or not all(isinstance(name, str) for name in names):
        raise ValueError(f"after must be a module name or a non-empty list of names, got {after!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"after names each module once; repeated: {duplicates}")
    modules = dict(model.named_modules())
    for name in names:
        if name not in modules or name == "":
            close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
            top = [n for n, _ in model.named_children()]
            hint = f"close matches: {close}" if close else f"top-level modules: {top}"
            raise ValueError(f"after: model has no module named {name!r}; {hint}")

    outputs = _probe(model, names, input_size)
    # Deepest first, so that wrapping a module never changes the path of another site.
    for name in sorted(names, key=lambda n: n.count("."), reverse=True):
        channels, device, dtype = outputs[name]
        attention = create_attention(kind, channels, blocks=blocks, **{"device": device, "dtype": dtype, **options})
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child_name, nn.Sequential(OrderedDict(module=modules[name], attention=attention)))
    return model


def _probe(model: nn.Module, names: list[str], input_size: tuple[int, ...]) -> dict[str, tuple]:
    """One eval-mode forward at ``input_size``; return ``(channels, device, dtype)`` of each module's output."""
    reference = next(model.parameters(), None)
    if reference is None:
        reference = next(model.buffers(), torch.empty(0))
    outputs: dict[str, tuple] = {}

    def record(name):
        def hook(module, args, output):
            if not isinstance(output, torch.Tensor) or output.dim() != len(input_size) + 1:
                shape = list(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                raise ValueError(
                    f"after: module {name!r} outputs {shape}, not a feature map [B, C, *S] with "
                    f"{len(input_size) - 1} spatial dims like the input {list(input_size)}; attention needs channels "
                    "on dim 1 (a token sequence [B, N, C] is not one)"
                )
            outputs[name] = (output.shape[1], output.device, output.dtype)
            if len(outputs) == len(names):
                raise _ProbeDone

        return hook

    handles = [model.get_submodule(name).register_forward_hook(record(name)) for name in names]
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=reference.device, dtype=reference.dtype))
    except _ProbeDone:
        pass
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    missing = [name for name in names if name not in outputs]
    if missing:
        raise ValueError(f"after: modules {missing} were not called in a forward pass at input_size={input_size}")
    return outputs
