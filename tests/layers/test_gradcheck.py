"""Gradients of every layer, checked numerically on tiny float64 inputs."""

import pytest
import torch

from devices import needs_values
from layer_cases import CONFIGS, IDS, awake, build

pytestmark = needs_values


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
@pytest.mark.parametrize(("kind", "options"), CONFIGS, ids=IDS)
def test_gradcheck_layer(kind, options, memory_format):
    layer = awake(build(kind, options, channels=8))
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    params = tuple(p for p in layer.parameters())

    def run(x, *weights):
        state = dict(zip([name for name, _ in layer.named_parameters()], weights))
        return torch.func.functional_call(layer, state, (x,))

    assert torch.autograd.gradcheck(run, (x, *params), eps=1e-6, atol=1e-5)
