"""What one configuration runs: a module, its inputs, a loss and, for a network, an SGD step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tam.amp import autocast
from tam.bench.suites import Case, bench_kinds


@dataclass
class Workload:
    """A module with fixed inputs, run as forward or as a training step.

    The backward starts either from ``loss(output)``, a scalar, or from ``grad_output``, the gradient of the
    output itself (exactly one is given); ``optimizer``, when set, makes the step a full training step
    (``zero_grad``, forward, backward, ``optimizer.step()``). ``amp`` runs the forward and the loss under
    autocast, as ``tam train --amp`` does (:data:`tam.amp.AMP_MODES`).
    """

    module: nn.Module
    inputs: tuple[Tensor, ...]
    loss: Callable[[Tensor], Tensor] | None = None
    optimizer: torch.optim.Optimizer | None = None
    grad_output: Tensor | None = None
    amp: str = "none"
    _autocast: torch.autocast = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if (self.loss is None) == (self.grad_output is None):
            raise ValueError("a Workload needs exactly one of loss and grad_output")
        self._autocast = autocast(self.inputs[0].device.type, self.amp)  # built once, entered every step

    def forward(self) -> Tensor:
        with self._autocast:
            return self.module(*self.inputs)

    def backward(self, output: Tensor) -> None:
        if self.grad_output is not None:
            output.backward(self.grad_output)
        else:
            with self._autocast:  # the loss too, as tam train computes it
                loss = self.loss(output)
            loss.backward()
        if self.optimizer is not None:
            self.optimizer.step()

    def step(self) -> None:
        """One training step; gradients are dropped first, so every step allocates them afresh."""
        for tensor in (*self.module.parameters(), *self.inputs):
            tensor.grad = None
        self.backward(self.forward())

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())


def build_workload(case: Case, device: torch.device | str = "cpu") -> Workload:
    """Build the module and inputs of ``case`` on ``device``, in train mode, float32, seeded.

    A block receives ``x: [batch, channels, side, side]`` that requires grad and backpropagates a fixed
    random gradient of ``y``, dense and in ``y``'s memory format, as an activation inside a network would.
    (``y.sum()`` would seed an expanded, zero-stride gradient, on which PyTorch's CPU BatchNorm backward
    for ``channels_last`` takes a path about 8× slower: it would bury the difference between kinds.)
    A network receives images and labels and takes an SGD step (lr 0.1, momentum 0.9, weight decay 5e-4:
    the thesis recipe) on the cross-entropy. With ``case.channels_last`` the input (and a network's weights)
    are in ``channels_last`` memory format; with ``case.amp`` every forward runs under autocast.
    """
    torch.manual_seed(0)
    memory_format = torch.channels_last if case.channels_last else torch.contiguous_format
    if case.model is not None:
        from tam.models import create_model

        attention = {}
        if case.kind != "none":
            kind, options = bench_kinds()[case.kind]
            attention = dict(attention=kind, attention_blocks=case.attention_blocks, heads=case.heads, **options)
        model = create_model(case.model, num_classes=10, preset=case.preset, **attention)
        model = model.to(device, memory_format=memory_format)
        images = torch.randn(case.batch, case.channels, case.side, case.side, device=device)
        images = images.contiguous(memory_format=memory_format)
        labels = torch.randint(0, 10, (case.batch,), device=device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        return Workload(
            model.train(), (images,), loss=lambda logits: F.cross_entropy(logits, labels), optimizer=optimizer,
            amp=case.amp,
        )

    from tam.layers import create_attention

    kind, options = bench_kinds()[case.kind]
    block = create_attention(kind, case.channels, blocks=case.blocks, heads=case.heads, **options).to(device)
    x = torch.randn(case.batch, case.channels, case.side, case.side, device=device)
    x = x.contiguous(memory_format=memory_format).requires_grad_()
    grad_output = torch.randn_like(x, memory_format=memory_format)
    return Workload(block.train(), (x,), grad_output=grad_output, amp=case.amp)
