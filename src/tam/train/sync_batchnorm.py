"""BatchNorm with statistics over the global batch of all ranks, on any device.

``torch.nn.SyncBatchNorm`` only runs on accelerators; this module does the same with differentiable
all-reduces, so it also works on CPU with gloo. It computes the mean first and the variance around it second
(two reductions), which keeps the variance as accurate as the single-process BatchNorm it stands in for.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from tam.layers.norm import BatchNorm


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of every rank's copy is the sum of the incoming gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(tensor)


class GlobalBatchNorm(BatchNorm):
    """BatchNorm over ``[B, C, *S]`` inputs whose training statistics span every rank of the default group."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = all_reduce(input.new_tensor(float(input.numel() // input.size(1))))
        mean = all_reduce(input.sum(dims)) / count
        centred = input - mean.view(shape)
        var = all_reduce(centred.square().sum(dims)) / count
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            with torch.no_grad():
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(var * count / (count - 1).clamp(min=1), momentum)
        output = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            output = output * self.weight.view(shape) + self.bias.view(shape)
        return output


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm of ``module`` by a synchronised one: ``nn.SyncBatchNorm`` on CUDA (fused kernels),
    :class:`GlobalBatchNorm` elsewhere. Parameters and buffers are kept, so state-dict keys do not change.
    Call it before moving the model to its device."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, nn.SyncBatchNorm):
        converted = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                    module.track_running_stats)
        converted.load_state_dict(module.state_dict())
        return converted.train(module.training)
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, device))
    return module
