"""The memory model: known answers, ratios, the real allocations it counts, and the bisection over sides."""

import doctest

import pytest
import torch

import tam.bench.allocations
import tam.bench.memory_model
from tam.bench.allocations import AllocationTracker, peak_allocated_bytes
from tam.bench.suites_scale import scale_kinds
from tam.bench.memory_model import (
    BlockShape,
    build_block,
    crossover_side,
    largest_fitting,
    largest_side,
    phase_fn,
    predict,
    predict_peak,
)

FLOAT = 4


@pytest.mark.parametrize("module", [tam.bench.allocations, tam.bench.memory_model])
def test_docstring_examples_run(module):
    assert doctest.testmod(module, raise_on_error=False).failed == 0


def test_tracker_counts_new_storages_not_views_or_inputs():
    x = torch.ones(1000)
    with AllocationTracker() as tracker:
        view = x.view(10, 100)  # no new storage
        y = x * 2  # 4000 bytes
        y.add_(1)  # in place: nothing new
        del y  # freed before the next op allocates
        z = view.sum(0)  # 400 bytes
    assert tracker.peak == 4000 and tracker.current == 400 and z.shape == (100,)


def test_a_product_counts_the_copy_of_an_operand_expanded_within_its_matrices():
    a, column = torch.ones(1, 8, 4), torch.ones(1, 4, 1)
    with AllocationTracker() as tracker:
        torch.bmm(a, column.expand(1, 4, 100))  # one column repeated: BLAS reads it from a whole copy
    assert tracker.peak == FLOAT * (8 * 100 + 4 * 100)
    weight, t = torch.ones(4, 4), torch.ones(3, 4, 10)
    with AllocationTracker() as tracker:
        torch.bmm(weight.expand(3, 4, 4), t)  # one matrix broadcast over the batch is read in place
    assert tracker.peak == FLOAT * 3 * 4 * 10


def test_naive_non_local_inference_is_three_maps_and_qkv():
    # C = 8 (E = 4), one head, 16×16: q, k, v (3·E·N) are alive with the logits, the scaled logits and the softmax.
    n = 256
    assert predict_peak(BlockShape("nl", 8, 16, 16), "inference") == FLOAT * (3 * 4 * n + 3 * n * n)


def test_fused_non_local_inference_holds_no_map():
    # q, k, v as projected (3·E·N), their contiguous [N, d] copies (3·E·N) and the kernel's output (E·N).
    n, e = 32 * 32, 4
    assert predict_peak(BlockShape("nl_sdpa", 8, 32, 32), "inference") == FLOAT * 7 * e * n


def test_tam_gram_inference_is_two_feature_maps():
    # M x (C·N) and BN's output (C·N); the C×C maps are freed before. C = 8 at 64×64 dispatches to the Gram form.
    c, n = 8, 64 * 64
    assert predict_peak(BlockShape("tam", c, 64, 64), "inference") == FLOAT * 2 * c * n


def test_naive_non_local_grows_with_heads_and_n_squared():
    one, eight = (predict_peak(BlockShape("nl", 16, 32, 32, heads=h), "inference") for h in (1, 8))
    assert 7.5 < eight / one <= 8
    small, large = (predict_peak(BlockShape("nl", 16, s, s), "training") for s in (16, 32))
    assert 14 < large / small <= 16  # N ×4 → maps ×16


def test_tam_fused_non_local_and_the_linear_family_grow_linearly_and_tam_not_with_heads():
    for kind in ("tam", "nl_sdpa", "xca", "ea", "linear", "gc"):
        small, large = (predict_peak(BlockShape(kind, 16, s, 2 * s), "training") for s in (32, 64))
        assert 3.5 < large / small <= 4.05, kind
    one, eight = (predict_peak(BlockShape("tam", 16, 64, 128, heads=h), "training") for h in (1, 8))
    assert one == eight  # the Gram form does the same work whatever the heads


@pytest.mark.parametrize("kind", [*scale_kinds(), "floor"])
@pytest.mark.parametrize("phase", ["inference", "training"])
def test_model_counts_what_the_real_block_allocates(kind, phase):
    shape = BlockShape(kind, 16, 8, 16, heads=2, batch=2)
    block, x, grad = build_block(shape)
    run = phase_fn(block, x, grad, phase)
    run()  # a first call, as the measurement's warm-up
    block.zero_grad(set_to_none=True)
    x.grad = None
    assert peak_allocated_bytes(run) == predict_peak(shape, phase)


def test_predict_counts_flops_and_knows_half_precision():
    shape = BlockShape("nl", 8, 8, 8)
    full, half = predict(shape, "inference"), predict(shape, "inference", dtype=torch.float16)
    assert half.peak_bytes * 2 == full.peak_bytes
    n, e = 64, 4
    assert full.flops == 2 * (4 * n * 8 * e + 2 * n * n * e)  # DESIGN's MACs: shell 4·N·C·E, core 2·N²·E


def test_largest_fitting_known_answers():
    assert largest_fitting(lambda s: s * s <= 1000) == 31
    assert largest_fitting(lambda s: s <= 1) == 1
    assert largest_fitting(lambda s: False) is None
    assert largest_fitting(lambda s: True, 1, 100) == 100  # the search stops at high
    assert largest_fitting(lambda s: s < 7, 5, 9) == 6
    with pytest.raises(ValueError, match="low <= high"):
        largest_fitting(lambda s: True, 5, 4)


def test_largest_fitting_needs_few_calls():
    calls = []

    def fits(s):
        calls.append(s)
        return s <= 12345

    assert largest_fitting(fits, 1, 1 << 20) == 12345
    assert len(calls) <= 2 * 14 + 2


@pytest.mark.parametrize("kind, phase", [
    ("nl", "inference"), ("tam", "training"), ("cc", "inference"),
    ("xca", "training"), ("ea", "inference"), ("linear", "training"), ("gc", "inference"),
])
def test_largest_side_fits_and_one_more_does_not(kind, phase):
    budget = 8 * 2**20
    side = largest_side(kind, 16, budget, phase, heads=2)
    assert predict_peak(BlockShape(kind, 16, side, 2 * side, heads=2), phase) <= budget
    assert predict_peak(BlockShape(kind, 16, side + 1, 2 * side + 2, heads=2), phase) > budget


def test_largest_side_of_naive_non_local_follows_its_n_squared_term():
    # 3·h·N² floats dominate: N = 2H², so H ≈ (budget / (3·4·4))^(1/4) for one head.
    budget = 2**30
    side = largest_side("nl", 8, budget, "inference")
    assert abs(side - (budget / 48) ** 0.25) <= 2
    assert largest_side("nl", 8, 1, "inference") is None  # nothing fits one byte


def test_crossover_is_where_the_order_changes():
    # At 8 channels TAM's C×C maps cost more than naive Non-local's N×N map on a 1×2 map, not from 2×4 on.
    side = crossover_side("tam", "nl", 8, "inference", high=64)
    assert side == 2

    def peaks(s):
        return [predict_peak(BlockShape(k, 8, s, 2 * s), "inference") for k in ("tam", "nl")]

    before, at, after = peaks(side - 1), peaks(side), peaks(16)
    assert before[0] > before[1] and at[0] <= at[1] and after[0] <= after[1]
    assert crossover_side("tam", "nl", 64, "inference") == 1  # not above at any size
    assert crossover_side("nl", "nl_sdpa", 8, "inference", low=4, high=64) is None  # never cheaper past 4×8
