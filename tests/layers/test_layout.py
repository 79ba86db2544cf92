"""The fast paths move no activation between layouts: no copy of a tensor the size of a feature map."""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import tam
from devices import only_on
from layer_cases import awake

pytestmark = only_on("cpu", reason="counts the copies of the CPU kernels (the profiler's CPU events)")


def copied_elements(fn) -> list[int]:
    """Element counts of every tensor that ``fn()`` copies (``aten::copy_`` destinations), forward and backward.

    Not counted: the copy with which the CPU ``baddbmm_`` kernel seeds its accumulator (the Gram form's backward
    sums two products into one buffer that way); it moves nothing between layouts and replaces an addition.
    """
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    return [torch.Size(e.input_shapes[0]).numel() for e in prof.events()
            if e.name == "aten::copy_" and e.input_shapes and e.input_shapes[0]
            and not (e.cpu_parent and e.cpu_parent.name == "aten::baddbmm_")]


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(("kind", "options"), [
    ("tam", {"impl": "transposed"}),
    ("tam", {"impl": "gram"}),
    ("xca", {"impl": "gram"}),
    ("floor", {}),
])
def test_block_copies_no_feature_map(kind, options, memory_format):
    batch, channels, side, heads = 2, 16, 12, 4
    layer = awake(tam.create_attention(kind, channels, heads=heads, **options))
    x = torch.randn(batch, channels, side, side).to(memory_format=memory_format).requires_grad_()
    layer(x).sum().backward()  # warm-up: first calls may set things up
    copies = copied_elements(lambda: layer(x).sum().backward())
    # The smallest activation is one of q, k, v: batch × E × N; weights and d×d maps are far smaller here.
    smallest_activation = batch * (channels // 2) * side * side
    assert [n for n in copies if n >= smallest_activation] == []
