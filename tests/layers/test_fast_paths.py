"""TAM's Gram form against the transposed order, and the rule that picks between them."""

import pytest
import torch

import tam
from devices import needs_values
from layer_cases import awake
from tam.functional import gram_macs, gram_transposed_attention, transposed_macs
from tam.layers.dispatch import CPU_WRITE_COST
from tam.layers.transposed import form_costs


@needs_values
@pytest.mark.parametrize("spatial", [(9,), (4, 5), (2, 3, 4)])
@pytest.mark.parametrize("normalization", ["scale", "softmax"])
@pytest.mark.parametrize(("heads", "embed"), [(1, 4), (2, 8), (4, 8), (2, 12)])
def test_gram_form_equals_transposed_order(spatial, normalization, heads, embed):
    transposed = awake(tam.TransposedAttention(8, heads=heads, embed_channels=embed, normalization=normalization,
                                               impl="transposed").double())
    gram = tam.TransposedAttention(8, heads=heads, embed_channels=embed, normalization=normalization,
                                   impl="gram").double()
    gram.load_state_dict(transposed.state_dict())
    x = torch.randn(3, 8, *spatial, dtype=torch.float64)
    expected = transposed(x) - x
    assert (gram(x) - x - expected).abs().max() / expected.abs().max() <= 1e-10
    # the written-out backward of the Gram form against autograd through the transposed order
    x.requires_grad_()
    probe = torch.randn_like(x)
    grads = [torch.autograd.grad((layer(x) * probe).sum(), [x, *layer.parameters()]) for layer in (transposed, gram)]
    for expected_grad, actual_grad in zip(*grads):
        assert (actual_grad - expected_grad).abs().max() <= 1e-10 * expected_grad.abs().max().clamp_min(1e-30)


@needs_values
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.bfloat16, 2e-2), (torch.float16, 3e-3)])
@pytest.mark.parametrize("normalization", ["scale", "softmax"])
def test_gram_form_in_half_precision_tracks_float64(dtype, tolerance, normalization):
    torch.manual_seed(0)
    x = torch.randn(4, 32, 576, dtype=torch.float64) * 10
    weights = [torch.randn(16, 32, dtype=torch.float64) * 0.1 for _ in range(3)] + [
        torch.randn(32, 16, dtype=torch.float64) * 0.1]
    expected = gram_transposed_attention(x, *weights, heads=8, normalization=normalization)
    out = gram_transposed_attention(x.to(dtype), *(w.to(dtype) for w in weights), heads=8,
                                    normalization=normalization)
    assert (out.double() - expected).abs().max() / expected.abs().max() < tolerance


def uses_gram(layer, spatial):
    """The form the layer runs on CPU in float32 at ``spatial`` is the Gram form."""
    return layer.choose_form(spatial, "cpu", torch.float32).form == "gram"


def cpu_costs(n, channels, embed, heads):
    return [cost.at(CPU_WRITE_COST) for cost in form_costs(n, channels, embed, heads).values()]


def test_dispatch_rule_takes_the_cheaper_exact_form():
    transposed, gram = cpu_costs(64, 256, 128, 1)  # 8×8, wide: the C×C fold costs more than q, k, v
    assert transposed < gram and not uses_gram(tam.TransposedAttention(256, heads=1), (8, 8))
    transposed, gram = cpu_costs(1024, 64, 32, 8)  # 32×32: x xᵀ streams less than q, k, v and a
    assert gram < transposed and uses_gram(tam.TransposedAttention(64, heads=8), (32, 32))
    for side in (8, 16, 32, 56):
        for heads in (1, 8, 16):
            transposed, gram = cpu_costs(side * side, 64, 32, heads)
            assert uses_gram(tam.TransposedAttention(64, heads=heads), (side, side)) == (gram < transposed)


# The faster form on this project's CPU where the two differed by ≥ 5% (CPU_WRITE_COST's calibration, 2026-11-26):
# (channels, side, heads) -> Gram form faster.
MEASURED_FASTER = {
    (64, 8, 16): True, (64, 16, 1): True, (64, 16, 8): True, (64, 32, 16): True,
    (128, 8, 1): False, (128, 8, 16): False, (128, 16, 1): True, (128, 16, 16): True, (128, 32, 8): True,
    (256, 8, 8): False, (256, 16, 1): False, (256, 16, 16): False, (256, 32, 1): True, (256, 32, 8): True,
    (256, 32, 16): True,
}


@pytest.mark.parametrize(("shape", "gram_faster"), MEASURED_FASTER.items())
def test_dispatch_rule_ranks_the_calibration_shapes_as_measured(shape, gram_faster):
    channels, side, heads = shape
    assert uses_gram(tam.TransposedAttention(channels, heads=heads), (side, side)) == gram_faster


def test_gram_form_only_where_it_is_exact():
    assert not uses_gram(tam.TransposedAttention(64, heads=8, pos_encoding="sincos"), (32, 32))
    assert not uses_gram(tam.TransposedAttention(64, heads=8, geometry="direction"), (32, 32))
    assert not uses_gram(tam.TransposedAttention(64, heads=8, impl="transposed"), (32, 32))
    assert uses_gram(tam.TransposedAttention(256, impl="gram"), (8, 8))
    with pytest.raises(ValueError, match="impl='gram' needs geometry='full' and pos_encoding=None"):
        tam.TransposedAttention(64, geometry="magnitude", impl="gram")
    with pytest.raises(ValueError, match="impl must be one of"):
        tam.TransposedAttention(64, impl="fast")


def test_mac_counts_match_the_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(1, 64, 16, 16)
    for impl, formula in [("gram", gram_macs), ("transposed", transposed_macs)]:
        layer = tam.TransposedAttention(64, heads=4, impl=impl)
        with FlopCounterMode(display=False) as counter:
            layer(x)
        assert counter.get_total_flops() == 2 * formula(256, 64, 32, 4)
