"""Second derivatives of every layer (gradient penalties, meta-learning and Hessian tools take them)."""

import pytest
import torch

import tam

from devices import DEVICE, needs_values
from layer_cases import CONFIGS, IDS, awake, build

pytestmark = needs_values


def _fused_softmax(kind, options):
    """Non-local that may run CPU's fused SDPA kernel: ``impl="sdpa"``, or ``"auto"`` with softmax where q and k
    are as wide as v."""
    if kind != "nl" or options.get("normalization") == "scale" or options.get("impl") == "naive":
        return False
    return options.get("impl") == "sdpa" or options.get("geometry") != "magnitude"


# A block applied twice in one forward (Criss-cross's recurrence, or any block called on its own output) gives
# wrong second derivatives at batch 1 in training mode: PyTorch's native BatchNorm double backward. In the
# Criss-cross case, the Hessian-vector product along the query projection differs from central differences of
# the gradient by 12% (6.7e-5 of 5.6e-4), while the same block with its BN written out in mean/var ops agrees
# with them to 1e-13; first derivatives agree. Upstream: pytorch/pytorch#186256 (the saved training statistics
# carry no autograd history) and #196699 (a wrong second-order JVP of batch_norm). One application passes.
REPEATED = pytest.mark.xfail(strict=True, reason="native BatchNorm double backward, block applied twice at batch 1")
GRADGRAD_CASES = [
    pytest.param(kind, options, id=name, marks=REPEATED if options.get("recurrence", 2 if kind == "cc" else 1) > 1 else ())
    for (kind, options), name in zip(CONFIGS, IDS)
]


@pytest.mark.parametrize(("kind", "options"), GRADGRAD_CASES)
def test_gradgradcheck_layer(kind, options):
    x = torch.randn(1, 8, 2, 2, dtype=torch.float64, requires_grad=True)

    def gradgradcheck(layer):
        names = [name for name, _ in layer.named_parameters()]

        def run(x, *weights):
            return torch.func.functional_call(layer, dict(zip(names, weights)), (x,))

        return torch.autograd.gradgradcheck(run, (x, *layer.parameters()), eps=1e-6, atol=1e-5)

    layer = awake(build(kind, options, channels=8))
    if DEVICE.type == "cpu" and _fused_softmax(kind, options):  # the fused CPU kernel has no double backward
        with pytest.raises(RuntimeError, match="derivative for .*scaled_dot_product.* is not implemented"):
            gradgradcheck(awake(build(kind, {**options, "impl": "sdpa"}, channels=8)))
        if options.get("impl") == "sdpa":
            layer = awake(build(kind, {**options, "impl": "naive"}, channels=8))
        with tam.force_impl("naive"):  # the advice of NonLocal's docstring, for a layer built with impl="auto"
            assert gradgradcheck(layer)
            assert layer.last_dispatch.form == "naive"
    else:
        assert gradgradcheck(layer)


def test_gram_form_second_derivatives_equal_the_transposed_orders():
    # The written-out backward of the Gram form read saved intermediates as constants: its double backward
    # was wrong while gradgradcheck of the transposed order passed.
    x = torch.randn(2, 8, 2, 3, dtype=torch.float64, requires_grad=True)
    hessians = []
    for impl in ("gram", "transposed"):
        layer = awake(build("tam", {"heads": 2, "impl": impl}, channels=8))
        (grad_x,) = torch.autograd.grad((layer(x) ** 2).sum(), x, create_graph=True)
        hessians.append(torch.autograd.grad(grad_x.square().sum(), [x, *layer.parameters()]))
    for gram, transposed in zip(*hessians):
        torch.testing.assert_close(gram, transposed, rtol=1e-9, atol=1e-12)
