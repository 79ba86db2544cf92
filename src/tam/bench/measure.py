"""Measuring primitives: wall time, bytes saved for backward, CUDA peak memory, FLOPs, matmul rate, out-of-memory.

Each function measures one thing about a callable and knows nothing about attention; the runner
(:mod:`tam.bench.runner`) puts them together per configuration.
"""

from __future__ import annotations

import contextlib
import math
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count


@dataclass(frozen=True)
class Timing:
    """Summary of repeated timings in milliseconds: median, quartiles, extremes and the repetition count."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    max_ms: float
    reps: int

    @classmethod
    def from_samples(cls, samples_ms: list[float]) -> Timing:
        q1, median, q3 = _quartiles(samples_ms)
        return cls(median, q1, q3, min(samples_ms), max(samples_ms), len(samples_ms))


@dataclass(frozen=True)
class PairedRatio:
    """Summary of the per-repetition ratios ``top[i] / bottom[i]`` of two interleaved timings.

    ``median`` is the estimate, ``q1``/``q3`` its first and third quartiles (dimensionless), ``reps`` the
    number of repetitions (pairs of timings).

    Example:
        >>> PairedRatio.from_samples([2.0, 6.0, 3.0], [1.0, 3.0, 2.0]).median
        2.0
    """

    median: float
    q1: float
    q3: float
    reps: int

    @classmethod
    def from_samples(cls, top_ms: list[float], bottom_ms: list[float]) -> PairedRatio:
        """From two equally long lists of timings in ms, taken in the same repetitions (``bottom`` > 0)."""
        if len(top_ms) != len(bottom_ms):
            raise ValueError(f"need one timing per repetition on each side, got {len(top_ms)} and {len(bottom_ms)}")
        if any(b <= 0 for b in bottom_ms):
            raise ValueError("bottom timings must be positive")
        q1, median, q3 = _quartiles([t / b for t, b in zip(top_ms, bottom_ms)])
        return cls(median, q1, q3, len(top_ms))


def _quartiles(samples: list[float]) -> tuple[float, float, float]:
    """``(first quartile, median, third quartile)`` of ``samples``; all three equal for a single sample."""
    if not samples:
        raise ValueError("samples must hold at least one value")
    q1, _, q3 = statistics.quantiles(samples, n=4) if len(samples) > 1 else samples * 3
    return q1, statistics.median(samples), q3


def time_fn(
    fn: Callable[[], object],
    device: torch.device | str = "cpu",
    *,
    budget_s: float = 0.3,
    min_reps: int = 3,
    max_reps: int = 100,
    warmup: int = 1,
) -> Timing:
    """Time ``fn()`` after ``warmup`` untimed calls, repeating it about ``budget_s`` seconds in all.

    The first timed call sets the repetition count: ``budget_s`` over its duration, clipped to
    ``[min_reps, max_reps]``. On CPU each call is timed with ``time.perf_counter``; on CUDA with a pair of
    events per call, the first read at once, the others queued back to back and read after one
    synchronisation.

    Example:
        >>> time_fn(lambda: torch.randn(256, 256) @ torch.randn(256, 256)).median_ms > 0
        True
    """
    _check_counts(warmup, min_reps, max_reps)
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    first_ms = _time_call(fn, device)
    reps = _reps(first_ms, budget_s, min_reps, max_reps)
    if device.type != "cuda":
        return Timing.from_samples([first_ms, *(_time_call(fn, device) for _ in range(reps - 1))])
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps - 1)]
    for begin, end in events:
        begin.record()
        fn()
        end.record()
    torch.cuda.synchronize(device)
    return Timing.from_samples([first_ms, *(begin.elapsed_time(end) for begin, end in events)])


def time_interleaved(
    fns: Sequence[Callable[[], object]],
    device: torch.device | str = "cpu",
    *,
    budget_s: float = 0.6,
    min_reps: int = 3,
    max_reps: int = 100,
    warmup: int = 1,
) -> list[list[float]]:
    """Time several callables in alternation, so that a slow spell of the machine falls on all of them.

    Each fn is called ``warmup`` times untimed; then every repetition calls each fn once, in the given order
    in even repetitions and in reverse in odd ones (A B, B A, A B, … for two: neither always follows the
    other). The first repetition sets the repetition count: ``budget_s`` (for all fns together) over its
    total duration, clipped to ``[min_reps, max_reps]``. Every call is timed alone: ``time.perf_counter``
    on CPU, a pair of CUDA events and a synchronisation on CUDA.

    Returns:
        ``samples[j][i]``: milliseconds of ``fns[j]`` in repetition ``i``, ``len(fns)`` lists of equal length.

    Example:
        >>> a, b = time_interleaved([lambda: torch.ones(8).sum(), lambda: torch.ones(8).mean()], min_reps=2)
        >>> len(a) == len(b) >= 2
        True
    """
    _check_counts(warmup, min_reps, max_reps)
    if not fns:
        raise ValueError("need at least one function to time")
    device = torch.device(device)
    for fn in fns:
        for _ in range(warmup):
            fn()
    samples: list[list[float]] = [[] for _ in fns]

    def repetition(rep: int) -> None:
        order = range(len(fns)) if rep % 2 == 0 else reversed(range(len(fns)))
        for j in order:
            samples[j].append(_time_call(fns[j], device))

    repetition(0)
    for rep in range(1, _reps(sum(s[0] for s in samples), budget_s, min_reps, max_reps)):
        repetition(rep)
    return samples


def _time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Milliseconds of one call of ``fn()``.

    On CPU by ``time.perf_counter``; on CUDA by two events around it, synchronised before (the device starts
    idle) and after.
    """
    if device.type != "cuda":
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3
    torch.cuda.synchronize(device)
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    fn()
    end.record()
    torch.cuda.synchronize(device)
    return begin.elapsed_time(end)


def _check_counts(warmup: int, min_reps: int, max_reps: int) -> None:
    if warmup < 0 or min_reps < 1 or max_reps < min_reps:
        raise ValueError(f"need warmup ≥ 0 and 1 ≤ min_reps ≤ max_reps, got {warmup}, {min_reps}, {max_reps}")


def _reps(first_ms: float, budget_s: float, min_reps: int, max_reps: int) -> int:
    """Repetitions that fill ``budget_s`` seconds at ``first_ms`` milliseconds each, within ``[min_reps, max_reps]``."""
    return min(max(math.ceil(budget_s * 1e3 / max(first_ms, 1e-6)), min_reps), max_reps)


def saved_tensor_bytes(fn: Callable[[], object], *, exclude: Iterable[Tensor] = ()) -> int:
    """Bytes that autograd keeps for backward while ``fn()`` runs, counted once per storage.

    Every tensor packed by ``torch.autograd.graph.saved_tensors_hooks`` is charged the full size of its
    storage (a saved view keeps its whole base alive); storages shared by several saved tensors are counted
    once, and the storages of ``exclude`` (typically the parameters and buffers, which exist anyway) not at
    all. The storages are held until the count is done, so no address can be freed and reused meanwhile.

    Example:
        >>> x = torch.randn(1000, requires_grad=True)
        >>> saved_tensor_bytes(lambda: x.exp())  # exp saves its result: 1000 float32
        4000
    """
    skip = {_storage_key(t) for t in exclude}
    storages: dict[tuple[torch.device, int], torch.UntypedStorage] = {}

    def pack(t: Tensor) -> Tensor:
        key = _storage_key(t)
        if key not in skip:
            storages.setdefault(key, t.untyped_storage())
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storage.nbytes() for storage in storages.values())


def _storage_key(t: Tensor) -> tuple[torch.device, int]:
    return t.device, t.untyped_storage().data_ptr()


def _cpu_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# FlopCounterMode knows the CUDA fused attention kernels but not the CPU one, which it would count as 0.
CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flops,
}


def count_flops(forward: Callable[[], Tensor], backward: Callable[[Tensor], object] | None = None) -> tuple[int, int]:
    """FLOPs of ``out = forward()`` and of ``backward(out)``, as counted by ``FlopCounterMode``.

    The counter charges 2 FLOPs per multiply-add of matmuls, convolutions and fused attention (the CPU
    kernel through :data:`CPU_ATTENTION_FLOPS`) and nothing for elementwise ops (softmax, normalisation,
    residuals).

    Returns:
        ``(forward_flops, backward_flops)``; the second is 0 without ``backward``.

    Example:
        >>> a, b = torch.randn(8, 16), torch.randn(16, 4)
        >>> count_flops(lambda: a @ b)
        (1024, 0)
    """
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as counter:
        out = forward()
        forward_flops = counter.get_total_flops()
        if backward is not None:
            backward(out)
    return forward_flops, counter.get_total_flops() - forward_flops


def matmul_rate(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, *, size: int | None = None,
    budget_s: float = 0.5,
) -> float:
    """The fastest of repeated large square matmuls on ``device``, in FLOP/s (2 per multiply-add).

    What the machine's matmul kernels reach at their most efficient: the yardstick against which the FLOPs
    a workload counts say how long it must take at least. ``size`` defaults to 1024 on CPU, 8192 on CUDA.

    Example:
        >>> matmul_rate(size=64, budget_s=0.01) > 0
        True
    """
    device = torch.device(device)
    size = size or (8192 if device.type == "cuda" else 1024)
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    timing = time_fn(lambda: torch.mm(a, b), device, budget_s=budget_s, min_reps=3, max_reps=50)
    return 2 * size**3 / (timing.min_ms / 1e3)


def cuda_peak_bytes(fn: Callable[[], object], device: torch.device | str = "cuda") -> int:
    """Peak CUDA memory allocated while ``fn()`` runs, above what was allocated before it started."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says an allocation failed: CUDA's ``OutOfMemoryError``, or the CPU allocator's."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


@contextlib.contextmanager
def memory_limit(limit_bytes: int | None) -> Iterator[None]:
    """Let this process map at most ``limit_bytes`` more memory while inside (Linux; elsewhere a no-op).

    A CPU allocation past the limit then fails with the allocator's ``RuntimeError`` (see
    :func:`is_out_of_memory`) instead of swapping or waking the kernel's OOM killer. Lowers the soft
    ``RLIMIT_AS`` to the current address-space size plus ``limit_bytes`` and restores it on exit; do not
    use it around CUDA, whose context reserves far more address space than it uses.
    """
    if limit_bytes is None or not sys.platform.startswith("linux"):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = _address_space_bytes() + limit_bytes
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _address_space_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")
