"""The measuring primitives on plain torch ops whose answers are known by hand."""

import pytest
import torch
from torch import nn

from tam.bench import measure
from tam.bench.measure import (
    PairedRatio,
    Timing,
    count_flops,
    is_out_of_memory,
    matmul_rate,
    memory_limit,
    saved_tensor_bytes,
    time_fn,
    time_interleaved,
)


def test_saved_bytes_of_a_known_tensor():
    x = torch.randn(1000, requires_grad=True)
    assert saved_tensor_bytes(lambda: x.exp()) == 4000  # exp saves its float32 result
    assert saved_tensor_bytes(lambda: x.sin()) == 4000  # sin saves its input


def test_saved_bytes_counts_a_storage_once():
    x = torch.randn(1000, requires_grad=True)

    def square_of_exp():
        a = x.exp()  # saves a
        return a * a  # saves a twice more: still one storage

    assert saved_tensor_bytes(square_of_exp) == 4000


def test_saved_bytes_charges_a_view_its_whole_storage():
    x = torch.randn(1000, requires_grad=True)
    # x * 1.0 saves nothing (a Python number); sin saves a 10-element view of its 1000-element result
    assert saved_tensor_bytes(lambda: (x * 1.0)[:10].sin()) == 4000


def test_saved_bytes_excludes_parameters():
    layer = nn.Linear(100, 50, bias=False)
    x = torch.randn(8, 100, requires_grad=True)
    everything = saved_tensor_bytes(lambda: layer(x))
    activations = saved_tensor_bytes(lambda: layer(x), exclude=layer.parameters())
    assert activations == 8 * 100 * 4  # the input; the weight is excluded
    assert everything == activations + 100 * 50 * 4


def test_saved_bytes_without_grad_is_zero():
    x = torch.randn(1000)  # nothing requires grad: nothing is saved
    assert saved_tensor_bytes(lambda: x.exp()) == 0


def test_flops_of_a_known_matmul():
    m, k, n = 8, 16, 4
    a = torch.randn(m, k, requires_grad=True)
    b = torch.randn(k, n, requires_grad=True)
    forward, backward = count_flops(lambda: a @ b, lambda out: out.sum().backward())
    assert forward == 2 * m * k * n
    assert backward == 2 * forward  # grad of a and grad of b: one matmul each


def test_flops_of_a_convolution():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    forward, backward = count_flops(lambda: conv(torch.randn(2, 3, 10, 10)))
    assert forward == 2 * 2 * 8 * 10 * 10 * 3 * 3 * 3
    assert backward == 0


def test_time_fn_repeats_within_bounds():
    calls = []
    timing = time_fn(lambda: calls.append(1), budget_s=1e-9, min_reps=4, max_reps=10, warmup=2)
    assert timing.reps == 4 and len(calls) == 2 + 4
    assert 0 <= timing.min_ms <= timing.q1_ms <= timing.median_ms <= timing.q3_ms <= timing.max_ms

    calls.clear()
    assert time_fn(lambda: calls.append(1), budget_s=10.0, min_reps=1, max_reps=7).reps == 7


def test_time_fn_measures_wall_time():
    import time

    timing = time_fn(lambda: time.sleep(0.01), budget_s=0.03, min_reps=2, max_reps=5)
    # A sleep lasts at least its time; no upper bound, which a loaded machine could break.
    assert timing.median_ms >= 10 and 2 <= timing.reps <= 5


def test_timing_summary_of_known_samples():
    t = Timing.from_samples([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (t.median_ms, t.min_ms, t.max_ms, t.reps) == (3.0, 1.0, 5.0, 5)
    assert t.q1_ms < 3.0 < t.q3_ms
    single = Timing.from_samples([2.0])
    assert single.median_ms == single.q1_ms == single.q3_ms == 2.0


def test_time_interleaved_alternates_which_goes_first():
    calls = []
    a, b = time_interleaved([lambda: calls.append("A"), lambda: calls.append("B")], budget_s=1e-9, min_reps=4,
                            max_reps=4, warmup=1)
    assert "".join(calls) == "AB" + "ABBAABBA"  # warm-up, then A B | B A | A B | B A
    assert len(a) == len(b) == 4 and min(a + b) >= 0

    calls.clear()
    time_interleaved([lambda: calls.append("A"), lambda: calls.append("B"), lambda: calls.append("C")],
                     budget_s=1e-9, min_reps=3, max_reps=3, warmup=0)
    assert "".join(calls) == "ABCCBAABC"


def test_time_interleaved_sets_the_repetitions_by_the_first_one(monkeypatch):
    durations_ms = {"A": 3.0, "B": 1.0}
    calls = []

    def fake_time_call(fn, device):
        fn()
        return durations_ms[calls[-1]]

    monkeypatch.setattr(measure, "_time_call", fake_time_call)
    fns = [lambda: calls.append("A"), lambda: calls.append("B")]
    # the first repetition takes 3 + 1 = 4 ms: 0.02 s of budget is 5 repetitions
    assert time_interleaved(fns, budget_s=0.02, min_reps=2, max_reps=100, warmup=0) == [[3.0] * 5, [1.0] * 5]
    assert len(time_interleaved(fns, budget_s=0.02, min_reps=2, max_reps=3, warmup=0)[0]) == 3
    assert len(time_interleaved(fns, budget_s=1e-9, min_reps=2, max_reps=3, warmup=0)[0]) == 2


def test_time_interleaved_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least one"):
        time_interleaved([])
    with pytest.raises(ValueError, match="min_reps"):
        time_interleaved([lambda: None], min_reps=3, max_reps=2)


def test_paired_ratio_summarises_the_per_repetition_ratios():
    top, bottom = [2.0, 4.0, 9.0, 3.0], [1.0, 2.0, 3.0, 3.0]  # ratios 2, 2, 3, 1
    ratio = PairedRatio.from_samples(top, bottom)
    assert (ratio.median, ratio.reps) == (2.0, 4)
    assert ratio.q1 == pytest.approx(1.25) and ratio.q3 == pytest.approx(2.75)  # of 1, 2, 2, 3
    # not the quotient of the medians (3.5 / 2.5): a repetition's two timings are compared with each other
    assert ratio.median != pytest.approx(Timing.from_samples(top).median_ms / Timing.from_samples(bottom).median_ms)
    single = PairedRatio.from_samples([3.0], [2.0])
    assert single.median == single.q1 == single.q3 == 1.5


def test_paired_ratio_rejects_unpaired_or_zero_timings():
    with pytest.raises(ValueError, match="one timing per repetition"):
        PairedRatio.from_samples([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        PairedRatio.from_samples([1.0], [0.0])
    with pytest.raises(ValueError, match="at least one"):
        PairedRatio.from_samples([], [])


def test_out_of_memory_recognised():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8"))
    assert not is_out_of_memory(RuntimeError("shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="RLIMIT_AS is enforced on Linux")
def test_memory_limit_turns_a_huge_allocation_into_an_error_and_is_lifted():
    size = 1 << 30  # 1 GiB against a 64 MiB limit
    with pytest.raises(RuntimeError) as caught, memory_limit(64 << 20):
        torch.empty(size, dtype=torch.uint8)
    assert is_out_of_memory(caught.value)
    assert torch.empty(size, dtype=torch.uint8).numel() == size  # the limit is gone


def test_memory_limit_none_is_no_limit():
    with memory_limit(None):
        assert torch.ones(10).sum() == 10


def test_flops_of_cpu_fused_attention_are_counted():
    b, h, n, d = 2, 3, 64, 8
    q, k, v = (torch.randn(b, h, n, d, requires_grad=True) for _ in range(3))
    forward, backward = count_flops(
        lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), lambda out: out.sum().backward()
    )
    assert forward == 2 * (2 * b * h * n * n * d)  # q kᵀ and w v
    assert backward == 5 * forward // 2  # recomputes q kᵀ, then four gradient matmuls (torch's formula)


def test_matmul_rate_is_flops_over_the_fastest_call(monkeypatch):
    seen = {}

    def fake_time_fn(fn, device, **kwargs):
        seen["out"] = fn()
        return Timing(median_ms=4.0, q1_ms=3.0, q3_ms=5.0, min_ms=2.0, max_ms=6.0, reps=5)

    monkeypatch.setattr("tam.bench.measure.time_fn", fake_time_fn)
    assert matmul_rate("cpu", torch.float64, size=100) == 2 * 100**3 / 2e-3
    assert seen["out"].shape == (100, 100) and seen["out"].dtype == torch.float64
