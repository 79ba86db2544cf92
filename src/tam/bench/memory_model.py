"""Predicted peak memory and FLOPs of one attention block from its shapes alone, and the largest map that fits.

The model counts, op by op, the bytes each op of the block allocates and when they are freed
(:class:`~tam.bench.allocations.AllocationTracker`), on fake tensors (``FakeTensorMode``): the block runs
its real code path — the same dispatch to the Gram form or the fused kernel, the same copies and saved
tensors — while nothing is allocated, so a 128×256 map at 512 channels, or a side of 4096, costs a second to
answer. FLOPs are counted along the same run (``FlopCounterMode``, as :func:`tam.bench.measure.count_flops`).

Leading terms, in elements (``X = B·C·N``, ``E = C/2``, ``h`` heads), of the peaks the model finds:

    kind      inference (eval forward)         training step (forward + backward, weight gradients)
    tam       2·X (Gram form: M x, then BN)    3·X + O(B·C²)
    nl        3·B·h·N² (logits, scaled, softmax) 3·B·h·N² (saved softmax, its gradient, dW)
    nl_sdpa   3.5·X (q, k, v, contiguous copies, output) about 5·X
    cc        3·B·h·N·(H+W) + 2.5·X         about 4·B·h·N·(H+W) (two passes saved)

so only naive Non-local grows as N² and with the heads; the tests check these against the count.

What it leaves out: scratch space a kernel takes without the dispatcher (the fused attention's per-thread
blocks), the allocator's rounding (CUDA: 512 bytes) and, on CPU, what the C library keeps mapped.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tam.amp import autocast
from tam.bench.allocations import AllocationTracker

PHASES = ("inference", "training")


@dataclass(frozen=True)
class BlockShape:
    """One attention block and its input ``[batch, channels, height, width]``.

    ``kind`` is a benchmark kind (:func:`tam.bench.suites.bench_kinds`: ``nl`` the naive Non-local, ``nl_sdpa``
    the fused).
    """

    kind: str
    channels: int
    height: int
    width: int
    heads: int = 1
    batch: int = 1

    @property
    def positions(self) -> int:
        return self.height * self.width

    def label(self) -> str:
        return f"{self.kind} h{self.heads} {self.height}×{self.width} {self.channels}ch b{self.batch}"


@dataclass(frozen=True)
class Prediction:
    """What :func:`predict` answers: peak bytes above what existed before, and counted FLOPs."""

    peak_bytes: int
    flops: int


def build_block(
    shape: BlockShape,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    channels_last: bool = True,
    init: str = "normal",
) -> tuple[nn.Module, Tensor, Tensor]:
    """The block of ``shape`` and its input and output gradient, seeded, in train mode.

    ``x`` requires grad; ``grad_output`` is dense, in ``x``'s memory format (as inside a network; see
    :func:`tam.bench.workload.build_workload`). ``init`` is the projections' init (``"normal"``, ``"he"``).

    Shape:
        x, grad_output: ``[batch, channels, height, width]``
    """
    from tam.bench.suites import bench_kinds
    from tam.layers import create_attention

    kinds = bench_kinds()
    if shape.kind not in kinds:
        raise ValueError(f"kind must be one of {tuple(kinds)}, got {shape.kind!r}")
    torch.manual_seed(0)
    kind, options = kinds[shape.kind]
    # Built in place on the device and in the dtype (the default dtype, for the layer's parameters): fake
    # parameters cannot be moved by ``.to``, and real ones need not be.
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            block = create_attention(kind, shape.channels, heads=shape.heads, init=init, **options).train()
            memory_format = torch.channels_last if channels_last else torch.contiguous_format
            x = torch.randn(shape.batch, shape.channels, shape.height, shape.width)
    finally:
        torch.set_default_dtype(default)
    x = x.contiguous(memory_format=memory_format).requires_grad_()
    return block, x, torch.randn_like(x, memory_format=memory_format)


def phase_fn(block: nn.Module, x: Tensor, grad_output: Tensor, phase: str, amp: str = "none") -> Callable[[], None]:
    """One call of ``phase``: ``"inference"`` is an eval-mode forward under ``inference_mode``;
    ``"training"`` a train-mode forward and the backward of ``grad_output`` (gradients dropped first, so
    every call allocates them afresh). ``amp`` runs the forward under autocast (:data:`tam.amp.AMP_MODES`)."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    cast = autocast(x.device.type, amp)
    if phase == "inference":
        block.eval()
        plain = x.detach()  # a view; FlopCounterMode's module hooks fail on inputs that require grad here

        def inference() -> None:
            with torch.inference_mode(), cast:
                block(plain)

        return inference
    block.train()

    def training() -> None:
        drop_gradients(block, x)
        with cast:
            y = block(x)
        y.backward(grad_output.to(y.dtype))

    return training


def drop_gradients(block: nn.Module, x: Tensor) -> None:
    """Free the gradients a training call left on the block's parameters and on ``x``."""
    for tensor in (*block.parameters(), x):
        tensor.grad = None


def predict(
    shape: BlockShape, phase: str, *, dtype: torch.dtype = torch.float32, amp: str = "none",
    channels_last: bool = True,
) -> Prediction:
    """Peak bytes and FLOPs of one ``phase`` call of ``shape``'s block, counted on fake tensors.

    The peak is above what exists before the call (weights, ``x``, its output gradient): on CUDA what
    ``max_memory_allocated`` adds, on CPU what the process's resident memory grows by.

    Example:
        >>> p = predict(BlockShape("nl", channels=8, height=16, width=16), "inference")
        >>> p.peak_bytes == 4 * (3 * 4 * 256 + 3 * 256 * 256)  # q, k, v and three N×N maps, float32
        True
    """
    return _trace(shape, phase, dtype, amp, channels_last, True)


def predict_peak(shape: BlockShape, phase: str) -> int:
    """:func:`predict`'s peak bytes alone (float32, ``channels_last``), without counting FLOPs (faster)."""
    return _trace(shape, phase, torch.float32, "none", True, False).peak_bytes


@functools.lru_cache(maxsize=4096)
def _trace(shape: BlockShape, phase: str, dtype: torch.dtype, amp: str, channels_last: bool, flops: bool) -> Prediction:
    from torch._subclasses.fake_tensor import FakeTensorMode

    from tam.bench.measure import count_flops

    fake = FakeTensorMode()
    with fake:
        block, x, grad_output = build_block(shape, "cpu", dtype, channels_last=channels_last)
    run = phase_fn(block, x, grad_output, phase, amp)
    with fake, AllocationTracker() as tracker:
        counted = sum(count_flops(run)) if flops else run()
    return Prediction(tracker.peak, counted or 0)


def largest_fitting(fits: Callable[[int], bool], low: int = 1, high: int = 1 << 16) -> int | None:
    """The largest integer ``s`` in ``[low, high]`` with ``fits(s)``, for ``fits`` true up to a point and
    false beyond it; ``None`` if ``fits(low)`` is false, ``high`` if ``fits(high)`` is true.

    Doubles from ``low`` until ``fits`` fails, then bisects: about ``2·log2(s)`` calls.

    Example:
        >>> largest_fitting(lambda s: s * s <= 1000)
        31
    """
    if low > high:
        raise ValueError(f"need low <= high, got {low} > {high}")
    if not fits(low):
        return None
    good, bad = low, None
    while bad is None:
        step = min(max(2 * good, good + 1), high)
        if step == good:
            return good
        if fits(step):
            good = step
        else:
            bad = step
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if fits(middle) else (good, middle)
    return good


def largest_side(
    kind: str, channels: int, budget_bytes: int, phase: str, *, heads: int = 1, batch: int = 1, aspect: int = 2,
    high: int = 1 << 14,
) -> int | None:
    """The largest height ``H`` whose ``H × aspect·H`` map fits ``budget_bytes`` by :func:`predict`.

    ``None`` if not even ``1 × aspect`` fits; ``high`` means at least that. From 64 on, every kind's peak is
    one polynomial in H (terms in N, N·(H+W) and N²: :func:`peak_polynomial`), which places the answer at
    once; the two traces around it confirm it, else a bisection over traces decides.

    Example:
        >>> side = largest_side("nl", 8, 2**20, "inference")
        >>> predict(BlockShape("nl", 8, side, 2 * side), "inference").peak_bytes <= 2**20
        True
        >>> predict(BlockShape("nl", 8, side + 1, 2 * side + 2), "inference").peak_bytes > 2**20
        True
    """

    def peak(side: int) -> int:
        return predict_peak(BlockShape(kind, channels, side, aspect * side, heads=heads, batch=batch), phase)

    polynomial = peak_polynomial(peak)
    if polynomial is not None:
        guess = largest_fitting(lambda side: polynomial(side) <= budget_bytes, POLYNOMIAL_FROM, high)
        if guess is not None and peak(guess) <= budget_bytes and (guess == high or peak(guess + 1) > budget_bytes):
            return guess
    return largest_fitting(lambda side: peak(side) <= budget_bytes, 1, high)


POLYNOMIAL_FROM = 64  # below it the Gram-form dispatch and the weights' own terms change the peak's form
_SAMPLES = (64, 128, 256, 512)


def peak_polynomial(peak: Callable[[int], int]) -> Callable[[float], float] | None:
    """``c0 + c2·H² + c3·H³ + c4·H⁴`` through ``peak`` at H = 64, 128, 256, 512, if it also gives ``peak(384)``
    within a millionth; else ``None``. (At aspect a, N = a·H², N·(H+W) ∝ H³ and N² ∝ H⁴.)"""
    import numpy as np

    powers = (0, 2, 3, 4)
    matrix = np.array([[float(side) ** p for p in powers] for side in _SAMPLES])
    coefficients = np.linalg.solve(matrix, np.array([float(peak(side)) for side in _SAMPLES]))

    def polynomial(side: float) -> float:
        return float(sum(c * float(side) ** p for c, p in zip(coefficients, powers)))

    check = peak(384)
    return polynomial if abs(polynomial(384) - check) <= 1e-6 * check else None


def crossover_side(
    kind: str, other: str, channels: int, phase: str, *, heads: int = 1, batch: int = 1, aspect: int = 2,
    low: int = 1, high: int = 1 << 12,
) -> int | None:
    """The smallest height ``H`` in ``[low, high]`` (map ``H × aspect·H``) from which ``kind``'s predicted peak
    is at or below ``other``'s; ``low`` where it already is there, ``None`` if it never is up to ``high``.

    Assumes one crossing: ``other`` grows faster in N (as Non-local against TAM).

    Example:
        >>> crossover_side("tam", "nl", 8, "inference", high=64)  # 1×2: TAM's 8×8 maps cost more than N×N
        2
    """

    def above(side: int) -> bool:
        shapes = (BlockShape(k, channels, side, aspect * side, heads=heads, batch=batch) for k in (kind, other))
        mine, theirs = (predict_peak(shape, phase) for shape in shapes)
        return mine > theirs

    last_above = largest_fitting(above, low, high)
    if last_above is None:
        return low
    return None if last_above == high else last_above + 1
