"""Convention options outside the shared layer cases: positions on the block's input, the embed width ratio,
unscaled softmax logits in half precision, and their bad values."""

import math

import pytest
import torch

import reference
import tam
from layer_cases import awake, build

INPUT_POSITIONS = {"pos_encoding": "sincos", "pos_encoding_placement": "input"}


@pytest.mark.parametrize(("kind", "options", "core"), [
    ("tam", {"heads": 2}, lambda q, k, v, spatial: reference.non_local_scale(q, k, v)),
    ("tam", {"heads": 2, "normalization": "softmax", "impl": "gram"},
     lambda q, k, v, spatial: reference.transposed_softmax(q, k, v)),
    ("nl", {"normalization": "softmax"}, lambda q, k, v, spatial: reference.non_local_softmax(q, k, v)),
])
def test_positions_on_the_input_feed_every_projection_and_the_residual(kind, options, core):
    for spatial in [(5,), (3, 4), (2, 2, 3)]:
        layer = awake(build(kind, {**options, **INPUT_POSITIONS}))
        x = torch.randn(2, 8, *spatial, dtype=torch.float64)
        expected = reference.block(layer, x, core)
        assert (layer(x) - expected).abs().max() / expected.abs().max() <= 1e-10, spatial


def test_criss_cross_adds_input_positions_once_before_its_passes():
    layer = awake(build("cc", {"recurrence": 2, **INPUT_POSITIONS}))
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)

    def core(q, k, v, spatial):
        return reference.criss_cross(*(t.unflatten(-1, spatial) for t in (q, k, v))).flatten(-2)

    shifted = x + reference.sincos(8, (3, 4)).reshape(1, 8, 3, 4)
    layer.pos_encoding = None  # the reference's passes after the positions: the shell alone
    expected = reference.block(layer, reference.block(layer, shifted, core), core)
    layer.pos_encoding = "sincos"
    assert (layer(x) - expected).abs().max() / expected.abs().max() <= 1e-10


@pytest.mark.parametrize("kind", ["tam", "nl", "cc"])
def test_input_positions_are_the_block_at_init_plus_the_table(kind):
    layer = build(kind, INPUT_POSITIONS, dtype=torch.float32)
    x = torch.randn(3, 8, 4, 5)
    table = reference.sincos(8, (4, 5)).float().reshape(1, 8, 4, 5)
    torch.testing.assert_close(layer(x), x + table, rtol=0, atol=1e-6)
    stack = tam.create_attention(kind, 8, blocks=3, **INPUT_POSITIONS)
    assert [block.pos_encoding for block in stack] == ["sincos", None, None]
    torch.testing.assert_close(stack(x), x + table, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["tam", "nl"])
def test_input_positions_pass_gradcheck_and_keep_channels_last(kind):
    layer = awake(build(kind, {"heads": 2, **INPUT_POSITIONS}, channels=4))
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    y = layer(x.detach().contiguous(memory_format=torch.channels_last))
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, layer(x.detach()), rtol=1e-12, atol=1e-12)


def test_tam_with_input_positions_keeps_its_gram_form():
    layer = awake(build("tam", {"heads": 2, "impl": "gram", **INPUT_POSITIONS}))
    twin = awake(build("tam", {"heads": 2, "impl": "transposed", **INPUT_POSITIONS}))
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(layer(x), twin(x), rtol=1e-12, atol=1e-12)


def test_attention_maps_see_the_positions_on_the_input():
    layer = awake(build("tam", {"heads": 2, **INPUT_POSITIONS}))
    plain = awake(build("nl", {"heads": 2, "normalization": "scale"}))
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    shifted = x + reference.sincos(8, (3, 4)).reshape(1, 8, 3, 4)
    torch.testing.assert_close(layer.attention_map(x), plain.attention_map(shifted), rtol=1e-12, atol=1e-12)


# Logits past float16's range make the softmax all but one-hot, so a relative error of the logits of 1e-3 (fp16)
# or 8e-3 (bf16) can move weight between near-tied entries: these bounds are the function's conditioning.
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float16, 2e-2), (torch.bfloat16, 1e-1)])
@pytest.mark.parametrize("impl", ["transposed", "gram"])
def test_unscaled_softmax_logits_stay_finite_in_half_precision(dtype, tolerance, impl):
    # Inputs of magnitude 100 at 112²: v kᵀ (logits without 1/√N) reaches ~1e7, past float16's 65504.
    torch.manual_seed(0)
    layer = awake(tam.TransposedAttention(32, heads=2, normalization="softmax", scale_softmax_logits=False,
                                          impl=impl).double())
    x = torch.rand(2, 32, 112, 112, dtype=torch.float64) * 100
    expected = layer(x) - x
    low = x.to(dtype)
    out = layer.to(dtype)(low)
    assert torch.isfinite(out).all()
    error = (out.double() - low.double() - expected).abs().max() / expected.abs().max()
    assert error < tolerance


def test_embed_ratio_gives_each_site_a_width_in_proportion():
    assert tam.create_attention("tam", 64, embed_ratio=0.25, heads=2).embed_channels == 16
    model = tam.create_model("preresnet56", attention="tam", attention_blocks=(1, 1, 1), heads=8, embed_ratio=1.0)
    assert [stage.attention.embed_channels for stage in model.stages] == [64, 128, 256]
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 1), torch.nn.Conv2d(12, 20, 1))
    tam.insert_attention(net, after=["0", "1"], kind="nl", embed_ratio=0.5, input_size=(3, 8, 8))
    assert [net[i].attention.embed_channels for i in (0, 1)] == [6, 10]


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: tam.create_attention("tam", 64, embed_ratio=0.3), ValueError,
     "embed_ratio=0.3 gives a non-integer embed width 19.2 for 64 channels"),
    (lambda: tam.create_attention("tam", 64, embed_ratio=0.5, embed_channels=32), TypeError,
     "give embed_channels or embed_ratio, not both"),
    (lambda: tam.create_attention("tam", 64, embed_ratio=-1), ValueError, "embed_ratio must be a positive"),
    (lambda: tam.create_attention("tam", 64, embed_ratio="half"), TypeError, "embed_ratio must be a positive"),
    (lambda: tam.NonLocal(8, scale_divisor="sqrt"), ValueError, "scale_divisor must be one of"),
    (lambda: tam.TransposedAttention(8, scale_softmax_logits="no"), TypeError, "scale_softmax_logits must be a bool"),
    (lambda: tam.TransposedAttention(8, magnitude_scale_width="d"), ValueError, "magnitude_scale_width must be one"),
    (lambda: tam.CrissCross(8, pos_encoding_placement="values"), ValueError, "pos_encoding_placement must be one"),
    (lambda: tam.NonLocal(8, direction_eps=-1e-6), ValueError, "direction_eps must be a non-negative"),
    (lambda: tam.NonLocal(8, direction_eps=None), TypeError, "direction_eps must be a non-negative"),
])
def test_bad_convention_values_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_scale_divisors_scale_the_implied_weights_as_documented():
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    layers = {divisor: tam.NonLocal(8, heads=2, normalization="scale", scale_divisor=divisor).double()
              for divisor in ("sqrt_nd", "sqrt_n", "n")}
    for layer in layers.values():
        layer.load_state_dict(layers["sqrt_nd"].state_dict())
    maps = {divisor: layer.attention_map(x) for divisor, layer in layers.items()}
    n, d = 12, 2
    torch.testing.assert_close(maps["sqrt_n"], maps["sqrt_nd"] * math.sqrt(d), rtol=1e-12, atol=0)
    torch.testing.assert_close(maps["n"], maps["sqrt_nd"] * math.sqrt(d / n), rtol=1e-12, atol=0)


def test_key_factors_of_the_analysis_see_the_positions_on_the_input():
    from tam.analysis.geometry import key_factors

    layer = awake(build("nl", {"heads": 2, **INPUT_POSITIONS}))
    plain = awake(build("nl", {"heads": 2}))
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    shifted = x + reference.sincos(8, (3, 4)).reshape(1, 8, 3, 4)
    for actual, expected in zip(key_factors(layer, x), key_factors(plain, shifted)):
        torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["tam", "xca", "ea", "linear"])
def test_transposed_maps_see_the_positions_on_the_input(kind):
    layer = awake(build(kind, {"heads": 2, **INPUT_POSITIONS}))
    plain = awake(build(kind, {"heads": 2}))
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    shifted = x + reference.sincos(8, (3, 4)).reshape(1, 8, 3, 4)
    torch.testing.assert_close(layer.transposed_map(x), plain.transposed_map(shifted), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer(x), plain(shifted), rtol=1e-12, atol=1e-12)
