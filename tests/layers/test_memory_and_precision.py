"""Bytes saved for backward as heads grow, and half precision where unscaled `v kᵀ` overflows."""

import pytest
import torch

import tam
from devices import DEVICE, needs_values
from layer_cases import CONFIGS, IDS, awake, build

pytestmark = needs_values


def saved_bytes(layer, x):
    """Bytes autograd keeps for backward of `layer(x)`, counted once per storage; parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in layer.parameters()}
    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x)
    return sum(storages.values())


@pytest.mark.parametrize("impl", ["auto", "transposed", "gram"])
def test_tam_saves_no_more_with_16_heads_while_non_local_grows(impl):
    x = torch.randn(2, 32, 32, 32, requires_grad=True)
    tam_bytes = [saved_bytes(tam.TransposedAttention(32, heads=h, embed_channels=16, impl=impl), x) for h in (1, 16)]
    nl_bytes = [saved_bytes(tam.NonLocal(32, heads=h, embed_channels=16, impl="naive"), x) for h in (1, 16)]
    assert tam_bytes[1] <= tam_bytes[0]
    assert nl_bytes[1] >= 8 * nl_bytes[0]
    assert tam_bytes[1] * 10 < nl_bytes[1]


@pytest.mark.parametrize(
    ("kind", "options"),
    [("tam", {"impl": "transposed"}), ("tam", {"impl": "gram"}), ("xca", {"impl": "transposed"}),
     ("xca", {"impl": "gram"}), ("ea", {}), ("linear", {}), ("gc", {})],
    ids=["tam-transposed", "tam-gram", "xca-transposed", "xca-gram", "ea", "linear", "gc"],
)
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float16, 5e-3), (torch.bfloat16, 3e-2)])
def test_half_precision_stays_finite_where_unscaled_sums_overflow(dtype, tolerance, kind, options):
    torch.manual_seed(0)
    layer = tam.create_attention(kind, 32, **options).eval().double()
    x = torch.rand(2, 32, 112, 112, dtype=torch.float64) * 100
    with torch.no_grad():  # default init otherwise; γ sets the attention branch to the size of x, so it shows
        layer.bn.weight.fill_(1.0)
        layer.bn.weight.mul_(100 / (layer(x) - x).abs().max())
    expected = layer(x) - x
    k = torch.matmul(layer.phi.weight.flatten(1), x.flatten(2)).to(torch.float16)
    v = torch.matmul(layer.g.weight.flatten(1), x.flatten(2)).to(torch.float16)
    assert not torch.isfinite(torch.matmul(v, k.transpose(-1, -2))).all(), "this size must overflow unscaled"
    low = x.to(dtype)
    out = layer.to(dtype)(low)
    assert torch.isfinite(out).all()
    error = (out.double() - low.double() - expected).abs().max() / expected.abs().max()
    assert error < tolerance


@pytest.mark.parametrize(("kind", "options"), CONFIGS, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_finite_forward_and_backward(kind, options, dtype):
    layer = awake(build(kind, options, channels=16, dtype=torch.float32)).to(dtype)
    x = (torch.randn(2, 16, 12, 12) * 3).to(dtype).requires_grad_()
    y = layer(x)
    y.float().square().mean().backward()
    assert torch.isfinite(y).all()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters() if p.requires_grad)


@pytest.mark.parametrize(("kind", "options"), CONFIGS, ids=IDS)
def test_bf16_autocast_on_channels_last_tracks_float32(kind, options):
    """The mixed-precision training setting (autocast, channels_last): finite, close to float32, and the
    gradients reach the float32 weights and the input in their own dtype and layout."""
    layer = awake(build(kind, options, channels=16, dtype=torch.float32))
    x = torch.randn(2, 16, 12, 12).contiguous(memory_format=torch.channels_last).requires_grad_()
    expected = layer(x)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        y = layer(x)
    y.float().square().mean().backward()
    assert (y.float() - expected).abs().max() / expected.abs().max() < 5e-2
    assert x.grad.dtype == torch.float32 and x.grad.is_contiguous(memory_format=torch.channels_last)
    trainable = [p for p in layer.parameters() if p.requires_grad]
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in trainable)


def test_non_finite_input_is_not_hidden():
    x = torch.randn(1, 8, 4, 4)
    x[0, 0, 1, 1] = float("nan")
    for kind in ["tam", "nl", "cc"]:
        assert torch.isnan(awake(tam.create_attention(kind, 8))(x)).any()
