"""Identity at init, TAM ≡ Non-local `scale`, and state dicts shared by every kind."""

import pytest
import torch

import tam
from devices import needs_values
from layer_cases import CONFIGS, IDS, awake, build
from tam.layers import EfficientAttention, GlobalContext, LinearAttention, attention_kinds


@needs_values
@pytest.mark.parametrize(("kind", "options"), CONFIGS, ids=IDS)
def test_every_layer_is_exact_identity_at_init(kind, options):
    layer = build(kind, options, dtype=torch.float32)
    sizes = [(7, 9), (2, 2), (16, 5)] if kind == "cc" else [(11,), (7, 9), (3, 4, 5), (2, 2)]
    for spatial in sizes:
        x = torch.randn(3, 8, *spatial) * 10
        assert torch.equal(layer.train()(x), x), spatial
        assert torch.equal(layer.eval()(x), x), spatial


@needs_values
def test_positional_encoding_serves_any_size_and_never_touches_the_residual():
    layer = awake(tam.TransposedAttention(8, pos_encoding="sincos").double())
    plain = awake(tam.TransposedAttention(8).double())
    plain.load_state_dict(layer.state_dict())
    for spatial in [(4, 4), (5, 3), (6,), (2, 3, 2)]:
        x = torch.randn(2, 8, *spatial, dtype=torch.float64)
        assert not torch.allclose(layer(x), plain(x))
    assert set(layer.state_dict()) == set(plain.state_dict())


@pytest.mark.parametrize("spatial", [(7,), (4, 5), (2, 3, 4)])
@pytest.mark.parametrize("options", [{"heads": 1}, {"heads": 4}, {"heads": 2, "pos_encoding": "sincos"},
                                     {"heads": 2, "geometry": "direction"}, {"geometry": "magnitude"}])
@needs_values
def test_tam_scale_equals_non_local_scale_with_the_same_weights(spatial, options):
    t = awake(tam.TransposedAttention(8, **options).double())
    n = tam.NonLocal(8, normalization="scale", impl="naive", **options).double()
    n.load_state_dict(t.state_dict(), strict=True)
    x = torch.randn(2, 8, *spatial, dtype=torch.float64)
    expected = n(x)
    assert (t(x) - expected).abs().max() / expected.abs().max() <= 1e-10


@needs_values
def test_state_dicts_load_strictly_across_every_kind():
    """Strictly where the parameters agree; XCA's temperature is the one parameter only it has."""
    kinds = attention_kinds(benchmark=True)
    for source in kinds:
        state = awake(tam.create_attention(source, 16, heads=4, embed_channels=8)).state_dict()
        for target in kinds:
            layer = tam.create_attention(target, 16, heads=4, embed_channels=8)
            result = layer.load_state_dict(state, strict=False)
            assert set(result.missing_keys) | set(result.unexpected_keys) <= {"temperature"}, (source, target)
            assert torch.equal(layer.bn.weight, state["bn.weight"])
            if "temperature" not in result.missing_keys + result.unexpected_keys:
                layer.load_state_dict(state, strict=True)


@needs_values
def test_implied_tam_weights_equal_the_non_local_scale_map():
    t = tam.TransposedAttention(8, heads=2).double()
    n = tam.NonLocal(8, heads=2, normalization="scale").double()
    n.load_state_dict(t.state_dict())
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    queries = [0, 13, 29]
    implied = t.attention_map(x, queries)
    assert implied.shape == (2, 2, 3, 30)
    torch.testing.assert_close(implied, n.attention_map(x, queries), rtol=1e-12, atol=0)
    torch.testing.assert_close(t.attention_map(x)[:, :, queries], implied, rtol=1e-12, atol=0)


@needs_values
def test_attention_maps_reproduce_the_layer_output():
    """Weights from attention_map, applied to v and pushed through Wz and BN, give the layer's output."""
    x = torch.randn(2, 8, 4, 5, dtype=torch.float64)
    layers = [tam.NonLocal(8, heads=2), tam.TransposedAttention(8, heads=2), tam.CrissCross(8, heads=2, recurrence=1),
              EfficientAttention(8, heads=2), LinearAttention(8, heads=2), GlobalContext(8, heads=2)]
    for layer in layers:
        layer = awake(layer.double())
        weights = layer.attention_map(x)  # [B, h, N, N]
        v = torch.einsum("ec,bcn->ben", layer.g.weight[:, :, 0], x.flatten(2)).unflatten(1, (2, 2))
        a = torch.matmul(v, weights.transpose(-1, -2)).flatten(1, 2)
        y = layer.bn(torch.einsum("ce,ben->bcn", layer.z.weight[:, :, 0], a)).reshape(x.shape)
        torch.testing.assert_close(x + y, layer(x), rtol=1e-10, atol=1e-12)


@needs_values
def test_transposed_map_shape_and_value():
    layer = tam.TransposedAttention(8, heads=2).double()
    x = torch.randn(3, 8, 4, 4, dtype=torch.float64)
    m = layer.transposed_map(x)
    assert m.shape == (3, 2, 2, 2)
    k = torch.einsum("ec,bcn->ben", layer.phi.weight[:, :, 0], x.flatten(2)).unflatten(1, (2, 2))
    v = torch.einsum("ec,bcn->ben", layer.g.weight[:, :, 0], x.flatten(2)).unflatten(1, (2, 2))
    torch.testing.assert_close(m, torch.matmul(v, k.transpose(-1, -2)) / (16 * 2) ** 0.5)


@needs_values
@pytest.mark.parametrize("kind", ["xca", "ea", "linear"])
def test_transposed_maps_of_the_linear_family_give_the_core(kind):
    layer = awake(tam.create_attention(kind, 8, heads=2).double())
    x = torch.randn(3, 8, 4, 5, dtype=torch.float64)
    m = layer.transposed_map(x)
    assert m.shape == (3, 2, 2, 2)
    q, k, v = layer._project(x, (4, 5))
    if kind == "xca":
        applied = torch.matmul(m, v)
    elif kind == "ea":
        applied = torch.matmul(m, torch.softmax(q, dim=-2))
    else:  # linear: the map before the per-query normaliser φ(q_i)·mean_j φ(k_j) + ε/N
        phi_q, phi_k = (torch.nn.functional.elu(t) + 1 for t in (q, k))
        normaliser = (phi_k.mean(-1, keepdim=True) * phi_q).sum(-2, keepdim=True) + 1e-6 / 20
        applied = torch.matmul(m, phi_q) / normaliser
    torch.testing.assert_close(applied, layer._core(q, k, v, (4, 5)), rtol=1e-10, atol=1e-12)


def test_create_attention_stacks_blocks():
    stack = tam.create_attention("tam", 8, blocks=3, heads=2)
    assert isinstance(stack, torch.nn.Sequential) and len(stack) == 3
    assert isinstance(tam.create_attention("none", 8), torch.nn.Identity)
    assert isinstance(tam.create_attention("nl", 8, blocks=0), torch.nn.Identity)
