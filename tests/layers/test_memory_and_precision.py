"""Bytes saved for backward as heads grow, and half precision where unscaled `v kᵀ` overflows."""

import copy

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


def post_relu(shape, mean, seed=1):
    """Post-ReLU-like activations of the given mean, channels_last (as the precision bench feeds them)."""
    z = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (torch.relu(z) * mean * (2 * torch.pi) ** 0.5).contiguous(memory_format=torch.channels_last)


def gradients_under_autocast(layer, x64, dy, dtype):
    """Input and weight gradients of a copy of `layer`: float32 weights under autocast to `dtype`, or all in
    float64. A copy, since converting a layer converts its gradients in place (and a second backward would
    add to them): the gradients of two calls never share storage."""
    layer = copy.deepcopy(layer).to(torch.float64 if dtype == torch.float64 else torch.float32)
    x = (x64 if dtype == torch.float64 else x64.to(dtype).float()).clone().requires_grad_()
    with torch.autocast(DEVICE.type, dtype=dtype, enabled=dtype != torch.float64):
        y = layer(x)
    y.backward(dy.to(y.dtype))
    return [x.grad, *(p.grad for p in layer.parameters() if p.requires_grad)]


def relative_gradient_errors(got, want):
    """Per gradient: max |g − g₆₄| / max |g₆₄|."""
    return [float((g.double() - w).abs().max() / w.abs().max()) for g, w in zip(got, want, strict=True)]


# (kind, options, input mean, output-gradient scale). Mean 100 passes float16's range in every sum over the
# positions. The softmax kinds are fed smaller inputs and a loss-scaled output gradient instead (a gradient
# scaler multiplies it by up to 2¹⁶): at mean 100 their logits (~100²·C for TAM's softmax over v kᵀ, ~100·C for
# GC's over the positions) round by more than 1, which moves the weights by percents — the forward's
# conditioning, not an overflow.
HALF_BACKWARD_KINDS = [
    ("tam", {"impl": "gram"}, 100, 1),
    ("tam", {"impl": "transposed", "heads": 2}, 100, 1),
    ("tam", {"impl": "transposed", "heads": 2, "normalization": "softmax"}, 1, 1e4),
    ("xca", {"impl": "gram"}, 100, 1),
    ("ea", {}, 100, 1),
    ("linear", {}, 100, 1),
    ("gc", {}, 10, 10),
]


@pytest.mark.parametrize(("kind", "options", "mean", "gradient_scale"), HALF_BACKWARD_KINDS,
                         ids=["-".join([k, *map(str, o.values())]) for k, o, *_ in HALF_BACKWARD_KINDS])
@pytest.mark.parametrize(("dtype", "bound"), [(torch.float16, 1e-2), (torch.bfloat16, 5e-2)])
def test_half_precision_backward_tracks_float64_where_sums_over_positions_overflow(
    kind, options, mean, gradient_scale, dtype, bound
):
    """Mixed-precision training (float32 weights, autocast) over 64×64 positions with a coherent output
    gradient: the gradients' sums over the N positions (`dy xᵀ` of every projection, the Gram form's C×C maps,
    the transposed form's `Σ da qᵀ`) pass float16's range unscaled; every gradient, of the input and of each
    weight, stays finite and within `bound` of float64's, relative to its largest entry."""
    torch.manual_seed(0)
    layer = tam.create_attention(kind, 16, **options).eval()  # BN as an affine map: dy reaches the branch whole
    with torch.no_grad():
        layer.bn.weight.fill_(1.0)
    x64 = post_relu((2, 16, 64, 64), mean)
    dy = (1 + torch.randn(x64.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)) * gradient_scale
    dy = dy.contiguous(memory_format=torch.channels_last)
    x = x64.flatten(2).to(torch.float16).double()
    assert not torch.isfinite(torch.matmul(dy.flatten(2), x.transpose(-1, -2)).half()).all(), "must overflow unscaled"
    got = gradients_under_autocast(layer, x64, dy, dtype)
    want = gradients_under_autocast(layer, x64.to(dtype).double(), dy, torch.float64)
    assert all(torch.isfinite(g).all() for g in got)
    assert max(relative_gradient_errors(got, want)) < bound


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_training_backward_through_batch_norm_stays_finite(dtype):
    """TAM in training mode (BN on batch statistics) at mean 100 on 64×64: the float16 channels_last BN
    backward of PyTorch's CPU kernel overflowed a per-channel sum over the positions."""
    torch.manual_seed(0)
    layer = tam.create_attention("tam", 64, impl="gram").train()
    with torch.no_grad():
        layer.bn.weight.fill_(1.0)
    x64 = post_relu((1, 64, 64, 64), 100)
    dy = torch.randn(x64.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    dy = dy.contiguous(memory_format=torch.channels_last)
    got = gradients_under_autocast(layer, x64, dy, dtype)
    want = gradients_under_autocast(layer, x64.to(dtype).double(), dy, torch.float64)
    assert all(torch.isfinite(g).all() for g in got)
    assert max(relative_gradient_errors(got, want)) < {torch.float16: 1e-2, torch.bfloat16: 5e-2}[dtype]


@pytest.mark.parametrize("normalization", ["scale", "softmax"])
def test_transposed_half_backward_keeps_first_and_second_derivatives(normalization):
    """The float16 transposed form's written-out backward (and its recomputed graph under `create_graph`)
    gives the first and second derivatives of float64, to float16's rounding."""
    q, k, v = torch.rand(3, 2, 2, 4, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64).unbind(0)
    dy = torch.randn(2, 2, 4, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def derivatives(dtype):
        inputs = [t.to(dtype).requires_grad_() for t in (q, k, v)]
        out = tam.functional.transposed_attention(*inputs, normalization=normalization)
        written = torch.autograd.grad(out, inputs, dy.to(dtype), retain_graph=True)
        first = torch.autograd.grad(out, inputs, dy.to(dtype), create_graph=True)
        second = torch.autograd.grad(sum((g.double() ** 2).sum() for g in first), inputs)
        return [t.double() for t in (*written, *first, *second)]

    for got, want in zip(derivatives(torch.float16), derivatives(torch.float64), strict=True):
        assert torch.isfinite(got).all()
        assert (got - want).abs().max() <= 1e-2 * want.abs().max()
