"""Each functional core against its written-out reference, in float64, with gradients."""

import pytest
import torch

import reference
from tam import functional as TF

torch.manual_seed(0)


def rand(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def assert_close(actual, expected, rtol=1e-10):
    scale = expected.abs().max().clamp_min(1e-30)
    assert (actual - expected).abs().max() / scale <= rtol


# Positions as they come from 1-D (L=5), 2-D (3×4) and 3-D (2×2×3) grids, flattened.
POSITIONS = [5, 12, 12]


@pytest.mark.parametrize("n", POSITIONS)
def test_transposed_scale_equals_non_local_scale_reference(n):
    q, k, v = rand(2, 3, 4, n), rand(2, 3, 4, n), rand(2, 3, 4, n)
    assert_close(TF.transposed_attention(q, k, v), reference.non_local_scale(q, k, v))


@pytest.mark.parametrize("n", POSITIONS)
def test_transposed_softmax_matches_reference(n):
    q, k, v = rand(2, 2, 3, n), rand(2, 2, 3, n), rand(2, 2, 5, n)
    assert_close(TF.transposed_attention(q, k, v, normalization="softmax"), reference.transposed_softmax(q, k, v))


@pytest.mark.parametrize("n", POSITIONS)
@pytest.mark.parametrize("impl", ["naive", "sdpa", "auto"])
def test_non_local_softmax_matches_reference(n, impl):
    q, k, v = rand(2, 2, 3, n), rand(2, 2, 3, n), rand(2, 2, 3, n)
    out = TF.non_local_attention(q, k, v, softmax_scale=0.7, impl=impl)
    assert_close(out, reference.non_local_softmax(q, k, v, tau=0.7))


def test_non_local_scale_matches_reference_with_fewer_keys():
    q, k, v = rand(1, 2, 3, 12), rand(1, 2, 3, 4), rand(1, 2, 5, 4)
    out = TF.non_local_attention(q, k, v, normalization="scale")
    assert_close(out, reference.non_local_scale(q, k, v))


@pytest.mark.parametrize("grid", [(3, 4), (1, 5), (4, 1), (2, 2)])
def test_criss_cross_matches_reference(grid):
    q, k, v = rand(2, 2, 3, *grid), rand(2, 2, 3, *grid), rand(2, 2, 4, *grid)
    assert_close(TF.criss_cross_attention(q, k, v), reference.criss_cross(q, k, v))


@pytest.mark.parametrize("bad", [(2, 2, 3, 12), (2, 2, 3, 2, 2, 3)])
def test_criss_cross_refuses_other_than_2d(bad):
    with pytest.raises(ValueError, match="q must have 5 dims"):
        TF.criss_cross_attention(rand(*bad), rand(*bad), rand(*bad))


def test_criss_cross_map_rows_sum_to_one_and_vanish_off_the_cross():
    q, k = rand(1, 2, 3, 4, 5), rand(1, 2, 3, 4, 5)
    queries = torch.tensor([0, 7, 19])
    m = TF.criss_cross_map(q, k, queries).reshape(1, 2, 3, 4, 5)
    assert_close(m.sum(dim=(-1, -2)), torch.ones(1, 2, 3, dtype=torch.float64))
    for slot, flat in enumerate(queries.tolist()):
        i, j = divmod(flat, 5)
        cross = torch.zeros(4, 5, dtype=torch.bool)
        cross[i, :] = cross[:, j] = True
        assert (m[0, :, slot][:, ~cross] == 0).all()
        assert (m[0, :, slot][:, cross] > 0).all()


def test_criss_cross_map_reproduces_the_attention():
    q, k, v = rand(1, 2, 3, 3, 4), rand(1, 2, 3, 3, 4), rand(1, 2, 2, 3, 4)
    m = TF.criss_cross_map(q, k, torch.arange(12))  # [B, h, N, N]
    out = torch.matmul(v.flatten(-2), m.transpose(-1, -2)).unflatten(-1, (3, 4))
    assert_close(out, TF.criss_cross_attention(q, k, v))


def test_non_local_map_reproduces_the_attention():
    q, k, v = rand(2, 2, 3, 6), rand(2, 2, 3, 6), rand(2, 2, 3, 6)
    for norm in ["softmax", "scale"]:
        w = TF.non_local_map(q, k, normalization=norm)
        assert_close(torch.matmul(v, w.transpose(-1, -2)), TF.non_local_attention(q, k, v, normalization=norm,
                                                                                  impl="naive"))


def test_geometry_factors():
    t = rand(2, 3, 4, 5)
    assert TF.apply_geometry(t, "full") is t
    magnitude = TF.apply_geometry(t, "magnitude")
    assert magnitude.shape == (2, 3, 1, 5)
    assert_close(magnitude[0, 0, 0, 0], t[0, 0, :, 0].norm())
    direction = TF.apply_geometry(t, "direction")
    assert_close(direction.norm(dim=2), torch.ones(2, 3, 5, dtype=torch.float64), rtol=1e-5)
    assert_close(direction * magnitude, t, rtol=1e-5)


@pytest.mark.parametrize(
    "core",
    [
        lambda q, k, v: TF.transposed_attention(q, k, v),
        lambda q, k, v: TF.transposed_attention(q, k, v, normalization="softmax"),
        lambda q, k, v: TF.non_local_attention(q, k, v, impl="naive"),
        lambda q, k, v: TF.non_local_attention(q, k, v, impl="sdpa"),
        lambda q, k, v: TF.non_local_attention(q, k, v, normalization="scale"),
        lambda q, k, v: TF.criss_cross_attention(*(t.unflatten(-1, (2, 3)) for t in (q, k, v))),
    ],
    ids=["tam-scale", "tam-softmax", "nl-naive", "nl-sdpa", "nl-scale", "cc"],
)
def test_gradcheck_cores(core):
    q, k, v = (rand(1, 2, 3, 6).requires_grad_() for _ in range(3))
    assert torch.autograd.gradcheck(core, (q, k, v))


@pytest.mark.parametrize("per_sample", [False, True], ids=["shared-weight", "per-sample-weight"])
@pytest.mark.parametrize("t_last", [False, True], ids=["t-nchw", "t-nhwc"])
def test_weight_matmul_in_either_layout_equals_the_product(per_sample, t_last):
    weight = rand(*((3, 5, 4) if per_sample else (5, 4))).requires_grad_()
    t = rand(3, 6, 4).transpose(1, 2) if t_last else rand(3, 4, 6)  # [B, I, N], channels innermost or not
    t.requires_grad_()
    expected = torch.stack([w @ sample for w, sample in zip(weight.expand(3, -1, -1), t)])
    for channels_last in (False, True):
        out = TF.weight_matmul(weight, t, channels_last=channels_last)
        assert_close(out, expected)
        assert TF.is_channels_last(out) == channels_last
        assert torch.autograd.gradcheck(lambda w, x: TF.weight_matmul(w, x, channels_last=channels_last), (weight, t))
    grad_t, = torch.autograd.grad(TF.weight_matmul(weight, t, channels_last=True).sum(), t)
    assert grad_t.stride() == t.stride()  # the gradient comes back in the layout of its input


def test_sdpa_equals_naive_in_float32():
    q, k, v = (torch.randn(4, 8, 16, 256) for _ in range(3))
    naive = TF.non_local_attention(q, k, v, impl="naive")
    fused = TF.non_local_attention(q, k, v, impl="sdpa")
    torch.testing.assert_close(fused, naive, rtol=1e-5, atol=1e-5)


def test_auto_sends_softmax_to_the_fused_kernel():
    q, k, v = (torch.randn(4, 8, 16, 256) for _ in range(3))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        TF.non_local_attention(q, k, v, impl="auto")
    names = {event.name for event in prof.events()}
    assert not any("attention_math" in name for name in names), names
    assert any("flash_attention" in name or "efficient_attention" in name for name in names), names


def test_bad_arguments_name_themselves():
    q = rand(1, 1, 2, 4)
    with pytest.raises(ValueError, match="normalization"):
        TF.transposed_attention(q, q, q, normalization="relu")
    with pytest.raises(ValueError, match="impl"):
        TF.non_local_attention(q, q, q, impl="flash")
    with pytest.raises(ValueError, match="impl='sdpa'.*softmax"):
        TF.non_local_attention(q, q, q, normalization="scale", impl="sdpa")
    with pytest.raises(TypeError, match="normalization"):
        TF.transposed_attention(q, q, q, normalization=1)
    with pytest.raises(ValueError, match="same width"):
        TF.transposed_attention(q, rand(1, 1, 3, 4), q)
    with pytest.raises(ValueError, match="q must have 4 dims"):
        TF.transposed_attention(rand(1, 2, 4), q, q)


@pytest.mark.parametrize("n", POSITIONS)
def test_linear_family_cores_match_references(n):
    q, k, v = rand(2, 2, 3, n), rand(2, 2, 3, n), rand(2, 2, 3, n)
    temperature = torch.tensor([0.7, 1.9], dtype=torch.float64)
    assert_close(TF.cross_covariance_attention(q, k, v, temperature), reference.cross_covariance(q, k, v, temperature))
    assert_close(TF.efficient_attention(q, k, v), reference.efficient(q, k, v))
    assert_close(TF.linear_attention(q, k, v), reference.linear(q, k, v))
    assert_close(TF.global_context_attention(k, v), reference.global_context(k, v))


@pytest.mark.parametrize("n", POSITIONS)
def test_implied_weights_of_the_linear_family_reproduce_their_cores(n):
    q, k, v = rand(2, 2, 3, n), rand(2, 2, 3, n), rand(2, 2, 4, n)
    for core, weights in [(TF.efficient_attention(q, k, v), TF.efficient_map(q, k)),
                          (TF.linear_attention(q, k, v), TF.linear_map(q, k)),
                          (TF.global_context_attention(k, v), TF.global_context_map(k, n))]:
        assert_close(torch.matmul(v, weights.transpose(-1, -2)), core)


def xca_gram_inputs(heads, spatial, channels_last=False):
    """x ``[2, 6, N]`` (channel-innermost strides with ``channels_last``), Wθ, Wφ, Wg ``[4, 6]``, Wz ``[6, 4]``, τ."""
    channels, embed = 6, 4
    x = rand(2, *spatial, channels).movedim(-1, 1).flatten(2) if channels_last else rand(2, channels, *spatial).flatten(2)
    weights = [rand(embed, channels) for _ in range(3)] + [rand(channels, embed)]
    temperature = torch.rand(heads, dtype=torch.float64) + 0.5
    return tuple(t.requires_grad_() for t in (x, *weights, temperature))


def xca_transposed(x, w_theta, w_phi, w_g, w_z, temperature):
    """XCA's block core ``Wz · XCA(Wθ x, Wφ x, Wg x)`` evaluated on q, k, v, for the Gram form to equal."""
    heads = temperature.shape[0]
    q, k, v = (torch.matmul(w, x).unflatten(1, (heads, -1)) for w in (w_theta, w_phi, w_g))
    return torch.matmul(w_z, TF.cross_covariance_attention(q, k, v, temperature).flatten(1, 2))


def xca_gram(x, *weights_and_temperature):
    return TF.gram_cross_covariance_attention(x, *weights_and_temperature, heads=weights_and_temperature[-1].shape[0])


@pytest.mark.parametrize("heads", [1, 2, 4])
@pytest.mark.parametrize("spatial", [(7,), (3, 4), (2, 2, 3)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_xca_gram_form_equals_its_transposed_evaluation(heads, spatial, channels_last):
    inputs = xca_gram_inputs(heads, spatial, channels_last)
    gram, expected = xca_gram(*inputs), xca_transposed(*inputs)
    assert_close(gram, expected)
    grad = rand(*expected.shape)
    grads = torch.autograd.grad(gram, inputs, grad)
    for actual, wanted in zip(grads, torch.autograd.grad(expected, inputs, grad)):
        assert_close(actual, wanted)
    for t in (gram, grads[0]):  # output and gradient in the layout of x, so neighbours read them without a copy
        assert t.stride() == inputs[0].stride()


@pytest.mark.parametrize("heads", [1, 2])
def test_xca_gram_form_passes_gradcheck_and_gradgradcheck(heads):
    inputs = xca_gram_inputs(heads, (2, 3), channels_last=True)
    assert torch.autograd.gradcheck(xca_gram, inputs)
    assert torch.autograd.gradgradcheck(xca_gram, inputs)


def test_xca_gram_form_second_derivatives_equal_the_transposed_evaluations():
    inputs = xca_gram_inputs(2, (3, 4))
    hessians = []
    for form in (xca_gram, xca_transposed):
        (grad_x,) = torch.autograd.grad((form(*inputs) ** 2).sum(), inputs[0], create_graph=True)
        hessians.append(torch.autograd.grad(grad_x.square().sum(), inputs))
    for gram, transposed in zip(*hessians):
        assert_close(gram, transposed, rtol=1e-9)
