"""Bad arguments and inputs raise ValueError/TypeError naming the argument and what is allowed."""

import pytest
import torch

import tam


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: tam.TransposedAttention(8, heads=3), ValueError, r"heads=3 must divide .*embed_channels"),
        (lambda: tam.NonLocal(8, embed_channels=6, heads=4), ValueError, r"heads=4 must divide embed_channels=6"),
        (lambda: tam.TransposedAttention(8, normalization="relu"), ValueError, r"normalization must be one of"),
        (lambda: tam.NonLocal(8, geometry="angle"), ValueError, r"geometry must be one of .*'magnitude'"),
        (lambda: tam.NonLocal(8, pos_encoding="learned"), ValueError, r"pos_encoding must be one of .*'sincos'"),
        (lambda: tam.CrissCross(8, init="xavier"), ValueError, r"init must be one of .*'he'"),
        (lambda: tam.NonLocal(8, impl="flash"), ValueError, r"impl must be one of"),
        (lambda: tam.NonLocal(8, impl="sdpa", normalization="scale"), ValueError, r"impl='sdpa'.*softmax"),
        (lambda: tam.NonLocal(8, subsample="yes"), TypeError, r"subsample must be a bool"),
        (lambda: tam.NonLocal(8, softmax_scale=0), ValueError, r"softmax_scale must be a positive"),
        (lambda: tam.TransposedAttention(8, init_std=-1.0), ValueError, r"init_std must be a positive"),
        (lambda: tam.TransposedAttention(8.0), TypeError, r"channels must be an int"),
        (lambda: tam.TransposedAttention(0), ValueError, r"channels must be ≥ 1"),
        (lambda: tam.TransposedAttention(8, heads=2.0), TypeError, r"heads must be an int"),
        (lambda: tam.CrissCross(8, recurrence=0), ValueError, r"recurrence must be ≥ 1"),
        (lambda: tam.CrissCross(8, geometry="full"), TypeError, r"CrissCross has no geometry"),
        (lambda: tam.TransposedAttention(8, heads=4, normalization="softmax"), ValueError, r"keys of width ≥ 2"),
        (lambda: tam.TransposedAttention(8, geometry="magnitude", normalization="softmax"), ValueError,
         r"keys of width ≥ 2"),
        (lambda: tam.NonLocal(8, heads=4, geometry="direction"), ValueError, r"geometry='direction' needs"),
        (lambda: tam.create_attention("se", 8), ValueError, r"kind must be one of .*'tam'"),
        (lambda: tam.create_attention("tam", 8, head=2), TypeError, r"unknown option\(s\) \['head'\].*'heads'"),
        (lambda: tam.create_attention("none", 8, heads=2), TypeError, r"options \['heads'\] given"),
        (lambda: tam.create_attention("tam", 8, blocks=-1), ValueError, r"blocks must be ≥ 0"),
        (lambda: tam.create_attention("xca", 8, normalization="softmax"), TypeError,
         r"unknown option\(s\) \['normalization'\] for kind='xca'"),
        (lambda: tam.create_attention("gc", 8, impl="gram"), TypeError, r"unknown option\(s\) \['impl'\]"),
        (lambda: tam.create_attention("xca", 8, geometry="magnitude"), ValueError,
         r"geometry must be one of \('full', 'direction'\)"),
        (lambda: tam.create_attention("ea", 8, geometry="magnitude"), ValueError,
         r"geometry must be one of \('full', 'direction'\)"),
        (lambda: tam.create_attention("xca", 8, impl="gram", pos_encoding="sincos"), ValueError,
         r"impl='gram' needs geometry='full' and pos_encoding=None"),
        (lambda: tam.create_attention("xca", 8, impl="fast"), ValueError, r"impl must be one of"),
    ],
)
def test_bad_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize(
    ("layer", "x", "error", "match"),
    [
        (tam.TransposedAttention(8), torch.randn(2, 4, 5, 5), ValueError, r"x has 4 channels .*channels=8"),
        (tam.NonLocal(8), torch.randn(2, 8), ValueError, r"1 or 2 or 3 spatial dims"),
        (tam.NonLocal(8), torch.randn(1, 8, 2, 2, 2, 2), ValueError, r"1 or 2 or 3 spatial dims"),
        (tam.CrissCross(8), torch.randn(2, 8, 5), ValueError, r"CrissCross expects .* 2 spatial dims"),
        (tam.CrissCross(8), torch.randn(2, 8, 2, 3, 4), ValueError, r"2 spatial dims"),
        (tam.TransposedAttention(8), torch.randn(2, 8, 0, 4), ValueError, r"zero-size"),
        (tam.NonLocal(8, subsample=True), torch.randn(2, 8, 1, 6), ValueError, r"subsample=True needs every spatial side ≥ 2"),
        (tam.TransposedAttention(8), torch.ones(2, 8, 3, dtype=torch.long), TypeError, r"floating-point"),
        (tam.TransposedAttention(8), [[1.0]], TypeError, r"expects a Tensor"),
    ],
)
def test_bad_inputs(layer, x, error, match):
    with pytest.raises(error, match=match):
        layer(x)


def test_xca_has_no_spatial_weights():
    with pytest.raises(ValueError, match="xca mixes channels, not positions.*transposed_map"):
        tam.create_attention("xca", 8).attention_map(torch.randn(1, 8, 3, 3))


def test_bad_queries():
    layer = tam.NonLocal(8)
    x = torch.randn(1, 8, 3, 3)
    with pytest.raises(ValueError, match=r"queries must lie in \[0, 9\)"):
        layer.attention_map(x, [9])
    with pytest.raises(TypeError, match="queries must be integer"):
        layer.attention_map(x, torch.tensor([0.5]))
    with pytest.raises(ValueError, match="only for normalization='scale'"):
        tam.TransposedAttention(8, heads=2, normalization="softmax").attention_map(x)
