"""Every layer against the written-out block shell with the written-out core, on 1-D, 2-D and 3-D inputs."""

import math

import pytest
import torch

import reference
from devices import needs_values
from layer_cases import CONFIGS, IDS, awake, build, spatial_shapes

pytestmark = needs_values


def dot_product_scale(layer, n, d):
    """s of a `scale` core over n keys of width d, from the options as documented: q·k divided by √(N·d)
    (d the head width under magnitude geometry with magnitude_scale_width="head"), √N or N."""
    if layer.geometry == "magnitude" and layer.magnitude_scale_width == "head":
        d = layer.head_channels
    divisor = getattr(layer, "scale_divisor", "sqrt_nd")
    return {"sqrt_nd": 1 / math.sqrt(n * d), "sqrt_n": 1 / math.sqrt(n), "n": 1 / n}[divisor]


def reference_core(layer):
    kind = type(layer).__name__
    linear_family = {
        "CrossCovarianceAttention": lambda q, k, v, spatial: reference.cross_covariance(q, k, v, layer.temperature),
        "EfficientAttention": lambda q, k, v, spatial: reference.efficient(q, k, v),
        "LinearAttention": lambda q, k, v, spatial: reference.linear(q, k, v),
        "GlobalContext": lambda q, k, v, spatial: reference.global_context(k, v),
    }
    if kind in linear_family:
        return linear_family[kind]
    if kind == "TransposedAttention" and layer.normalization == "softmax":
        logit_scale = None if layer.scale_softmax_logits else 1.0
        return lambda q, k, v, spatial: reference.transposed_softmax(q, k, v, logit_scale)
    if kind in ("TransposedAttention", "NonLocal") and layer.normalization == "scale":
        return lambda q, k, v, spatial: reference.non_local_scale(
            q, k, v, dot_product_scale(layer, k.shape[-1], k.shape[-2]))
    if kind == "NonLocal":
        return lambda q, k, v, spatial: reference.non_local_softmax(q, k, v, tau=layer.softmax_scale)
    return lambda q, k, v, spatial: reference.criss_cross(*(t.unflatten(-1, spatial) for t in (q, k, v))).flatten(-2)


@pytest.mark.parametrize(("kind", "options"), CONFIGS, ids=IDS)
def test_layer_matches_written_out_reference(kind, options):
    for spatial in spatial_shapes(kind):
        layer = awake(build(kind, options))
        x = torch.randn(2, 8, *spatial, dtype=torch.float64)
        expected = x
        for _ in range(getattr(layer, "recurrence", 1)):
            expected = reference.block(layer, expected, reference_core(layer))
        actual = layer(x)
        assert (actual - expected).abs().max() / expected.abs().max() <= 1e-10, spatial


@pytest.mark.parametrize(("kind", "options"), CONFIGS, ids=IDS)
def test_channels_last_input_gives_the_same_output_in_its_own_layout(kind, options):
    layer = awake(build(kind, options))
    layouts = [((3, 4), torch.channels_last)] + ([] if kind == "cc" else [((2, 2, 3), torch.channels_last_3d)])
    for spatial, memory_format in layouts:
        x = torch.randn(2, 8, *spatial, dtype=torch.float64)
        expected = layer(x)
        actual = layer(x.contiguous(memory_format=memory_format))
        assert (actual - expected).abs().max() / expected.abs().max() <= 1e-12, spatial
        assert actual.is_contiguous(memory_format=memory_format), spatial


def test_sincos_table_matches_written_out_formula():
    from tam.layers.pos_encoding import sincos_table

    for channels, spatial in [(8, (5,)), (7, (3, 4)), (9, (2, 3, 2))]:
        torch.testing.assert_close(sincos_table(channels, spatial, dtype=torch.float64),
                                   reference.sincos(channels, spatial), rtol=0, atol=1e-12)
