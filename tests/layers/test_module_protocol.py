"""Every registered layer follows PyTorch's module protocol, as timm's ``attn_layer`` relies on: factory kwargs
``device``/``dtype`` reach every parameter and buffer, the meta device builds without memory, and a layer
materialised from meta by ``to_empty`` + ``reset_parameters`` is the identity at init."""

import functools

import pytest
import torch

from devices import DEVICE, needs_values
from tam.layers import attention_kind, attention_kinds

KINDS = attention_kinds(benchmark=True)


def _tensors(layer):
    return [*layer.parameters(), *layer.buffers()]


@pytest.mark.parametrize("kind", KINDS)
def test_factory_kwargs_reach_every_parameter_and_buffer(kind):
    # timm calls attn_layer(channels, device=..., dtype=...) on a partial holding the layer's options
    make = functools.partial(attention_kind(kind).layer, heads=2)
    layer = make(8, device="cpu", dtype=torch.float64)
    floats = [t for t in _tensors(layer) if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float64 for t in floats)
    assert all(t.device.type == "cpu" for t in _tensors(layer))
    # the only non-float buffer is BN's step count, an int64 as in torch.nn.BatchNorm
    assert [t.dtype for t in _tensors(layer) if not t.is_floating_point()] == [torch.int64]
    default = make(8)
    assert all(t.dtype == torch.float32 for t in _tensors(default) if t.is_floating_point())


@needs_values
@pytest.mark.parametrize("kind", KINDS)
def test_builds_on_meta_and_materialises_as_the_identity(kind):
    layer = attention_kind(kind).layer(8, heads=2, device="meta")
    assert all(t.is_meta for t in _tensors(layer))
    assert layer(torch.empty(2, 8, 5, 6, device="meta")).shape == (2, 8, 5, 6)  # shapes trace on meta

    layer.to_empty(device=DEVICE)
    layer.reset_parameters()
    assert not any(t.is_meta for t in _tensors(layer))
    assert torch.equal(layer.bn.running_var, torch.ones(8)) and torch.equal(layer.bn.running_mean, torch.zeros(8))
    x = torch.randn(2, 8, 5, 6) * 10
    assert torch.equal(layer.train()(x), x)
    assert torch.equal(layer.eval()(x), x)


@pytest.mark.parametrize("kind", KINDS)
def test_torch_default_device_context_builds_there(kind):
    with torch.device("meta"):
        layer = attention_kind(kind).layer(8)
    assert all(t.is_meta for t in _tensors(layer))


@needs_values
def test_reset_parameters_restores_the_init_after_training():
    layer = attention_kind("tam").layer(8, heads=2)
    x = torch.randn(4, 8, 5, 5)
    with torch.no_grad():
        layer.bn.weight.fill_(1.0)
    layer.train()(x)  # updates BN's running statistics
    assert not torch.equal(layer.bn.running_mean, torch.zeros(8))
    layer.reset_parameters()
    assert torch.equal(layer.bn.running_mean, torch.zeros(8)) and int(layer.bn.num_batches_tracked) == 0
    assert torch.equal(layer(x), x)
