"""``tam bench --suite precision``: where each kind stays finite and accurate in fp16 and bf16.

Matrix: every kind × {fp16, bf16} × {``autocast`` (float32 module, forward under autocast, as
``tam train --amp``), ``cast`` (module and input converted)} × maps 8×8, 16×16, 32×32, 64×64, 64×128,
128×256 [8×8, 32×32 with ``--quick``] × input magnitude 1, 10, 100 (post-ReLU activations: ``relu(z)``
scaled to that mean). 64 channels and one head (head width 32, as at 8 heads of the segmentation suite),
batch 1, the default init, and BN γ = 1 so that the attention branch reaches the output.

Per cell: is the block's output finite; the relative error of the attention branch (what enters the
block's BN: ``max |a − a₆₄| / max |a₆₄|`` against the same block in float64, input rounded to the format
first); is every gradient of a dense backward finite; does the true branch ``a₆₄`` fit the format at all
(a block need only stay finite where it does: without softmax the branch grows as the cube of the input's
scale, q·k·v). A non-finite cell is run again with
:class:`FirstNonFinite`, which names the first op that turned finite inputs into inf or NaN: what overflows.
Cells whose predicted memory passes the budget, or whose forecast time passes ``max_case_s``, are recorded
as not run, with why.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from tam.bench.measure import is_out_of_memory
from tam.bench.memory_model import BlockShape, build_block, predict

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
MODES = ("autocast", "cast")
SIDES = ((8, 8), (16, 16), (32, 32), (64, 64), (64, 128), (128, 256))
QUICK_SIDES = ((8, 8), (32, 32))
MAGNITUDES = (1, 10, 100)
CHANNELS, HEADS = 64, 1
# The bound on the branch's relative error that counts as accurate (issue #21's, for TAM `scale`): some
# 16 and 64 roundings of each format (2^-8 for bf16, 2^-11 for fp16).
ERROR_BOUND = {"bf16": 3e-2, "fp16": 5e-3}
# The float64 reference of naive Non-local is the same function through the fused kernel, which never
# forms the N×N map (float64 maps of 128×256 would take 8.6 GB per head).
REFERENCE_KIND = {"nl": "nl_sdpa"}


@dataclass(frozen=True)
class PrecisionCell:
    kind: str
    dtype: str
    mode: str
    height: int
    width: int
    magnitude: int

    def shape(self) -> BlockShape:
        return BlockShape(self.kind, CHANNELS, self.height, self.width, heads=HEADS)

    def label(self) -> str:
        return f"{self.kind} {self.dtype} {self.mode} {self.height}×{self.width} mean {self.magnitude}"


def precision_cells(kinds: Sequence[str], *, quick: bool = False) -> list[PrecisionCell]:
    """Every cell of the matrix, small maps first."""
    sides = QUICK_SIDES if quick else SIDES
    return [
        PrecisionCell(kind, dtype, mode, height, width, magnitude)
        for height, width in sides for kind in kinds for dtype in DTYPES for mode in MODES for magnitude in MAGNITUDES
    ]


def activations(shape: BlockShape, magnitude: float, dtype: torch.dtype = torch.float64, device="cpu") -> Tensor:
    """Post-ReLU-like input of mean ``magnitude``: ``relu(z)·magnitude·sqrt(2π)``, z standard normal, seeded,
    ``channels_last``.

    Shape:
        -> ``[batch, channels, height, width]``
    """
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(shape.batch, shape.channels, shape.height, shape.width, generator=generator, dtype=torch.float64)
    x = torch.relu(z) * (magnitude * math.sqrt(2 * math.pi))
    return x.to(device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)


class FirstNonFinite(TorchDispatchMode):
    """Records the first op whose floating inputs are all finite and whose output is not.

    Example:
        >>> with FirstNonFinite() as watch:
        ...     _ = torch.full((2,), 300.0, dtype=torch.float16) * 300
        >>> watch.found
        'aten.mul.Tensor → [2] float16 (inputs up to 300, float16 max 6.55e+04)'
    """

    def __init__(self) -> None:
        super().__init__()
        self.found: str | None = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.found is None and not _masks_with_infinity(func, args) and not _uninitialised(func):
            inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, Tensor) and t.is_floating_point()]
            outputs = [t for t in tree_flatten(out)[0] if isinstance(t, Tensor) and t.is_floating_point()]
            bad = next((t for t in outputs if t.numel() and not bool(t.isfinite().all())), None)
            if bad is not None and all(bool(t.isfinite().all()) for t in inputs if t.numel()):
                largest = max((float(t.abs().max()) for t in inputs if t.numel()), default=0.0)
                self.found = (
                    f"{func} → {list(bad.shape)} {str(bad.dtype).removeprefix('torch.')} (inputs up to {largest:.3g}, "
                    f"{str(bad.dtype).removeprefix('torch.')} max {torch.finfo(bad.dtype).max:.3g})"
                )
        return out


def _masks_with_infinity(func, args) -> bool:
    """Whether ``func`` writes ±inf on purpose: a mask filled with -inf before a softmax (criss-cross)."""
    masked = func in (torch.ops.aten.masked_fill.Scalar, torch.ops.aten.masked_fill_.Scalar)
    return masked and len(args) > 2 and isinstance(args[2], float) and math.isinf(args[2])


def _uninitialised(func) -> bool:
    """Whether ``func`` allocates without writing (``empty_like``, ``new_empty``...): its garbage is no overflow."""
    return func.overloadpacket.__name__.startswith(("empty", "new_empty"))


def _branch_visible(block: torch.nn.Module) -> list[Tensor]:
    """Set BN's γ to 1 (the block then adds its attention branch to x) and capture what enters BN."""
    captured: list[Tensor] = []
    norms = [m for m in block.modules() if m.__class__.__name__ == "BatchNorm"]
    for norm in norms:
        with torch.no_grad():
            norm.weight.fill_(1.0)
        norm.register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0].detach()))
    return captured


def _block(cell: PrecisionCell, device: torch.device, kind: str | None = None) -> torch.nn.Module:
    """The float32 block of ``cell`` (of ``kind`` instead, same weights); every format converts from it."""
    shape = cell.shape()
    shape = BlockShape(kind or shape.kind, shape.channels, shape.height, shape.width, heads=shape.heads)
    return build_block(shape, device)[0]


def _forward_backward(
    cell: PrecisionCell, device: torch.device, x64: Tensor, watch: bool = False
) -> tuple[list[Tensor], bool, bool, str | None]:
    """Run ``cell`` once: the branches it computed, whether y and every gradient are finite, what overflowed."""
    dtype = DTYPES[cell.dtype]
    module_dtype = dtype if cell.mode == "cast" else torch.float32
    block = _block(cell, device).to(module_dtype)
    captured = _branch_visible(block)
    x = x64.to(dtype).to(module_dtype).requires_grad_()  # rounded to the format in both modes
    detector = FirstNonFinite() if watch else None
    with detector or contextlib.nullcontext(), torch.autocast(device.type, dtype=dtype, enabled=cell.mode == "autocast"):
        y = block(x)
    forward_finite = bool(y.isfinite().all())
    grad = torch.randn(y.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64).to(device, y.dtype)
    with detector or contextlib.nullcontext():
        y.backward(grad.contiguous(memory_format=torch.channels_last))
    grads = [x.grad, *(p.grad for p in block.parameters() if p.requires_grad)]
    backward_finite = all(g is not None and bool(g.isfinite().all()) for g in grads)
    return captured, forward_finite, backward_finite, detector.found if detector else None


def reference_branches(cell: PrecisionCell, device: torch.device, x64: Tensor) -> list[Tensor]:
    """What enters BN in the float64 block (the same weights), from the input rounded to ``cell``'s format."""
    block = _block(cell, device, REFERENCE_KIND.get(cell.kind, cell.kind)).double()
    captured = _branch_visible(block)
    with torch.no_grad():
        block(x64.to(DTYPES[cell.dtype]).to(torch.float64))
    return captured


def relative_error(branches: list[Tensor], references: list[Tensor]) -> float:
    """``max |a − a₆₄| / max |a₆₄|`` over every captured branch (one per pass of the block); ``inf`` where a
    branch is not finite.

    Example:
        >>> relative_error([torch.tensor([1.0, 2.5])], [torch.tensor([1.0, 2.0], dtype=torch.float64)])
        0.25
    """
    error = 0.0
    for got, want in zip(branches, references, strict=True):
        if not bool(got.isfinite().all()):
            return math.inf
        scale = float(want.abs().max())
        diff = float((got.double() - want).abs().max())
        error = max(error, diff / scale if scale > 0 else diff)
    return error


def run_precision(
    cells: Sequence[PrecisionCell],
    device: torch.device | str,
    *,
    memory_limit_bytes: int,
    max_case_s: float | None = None,
    on_record: Callable[[list[dict]], object] | None = None,
    progress: bool = True,
    under_load: bool = False,
) -> list[dict]:
    """Run every cell (see the module docstring); one record each, ``status`` ``ok`` or why it did not run.

    ``memory_limit_bytes``: cells (and float64 references) predicted above it are not run. ``max_case_s``:
    nor are cells whose time, at the FLOP rate of the last cell of their series (kind, format, mode),
    would pass it. ``on_record(records)`` after each cell.
    """
    from tqdm import tqdm

    from tam.bench.runner import environment

    device = torch.device(device)
    records: list[dict] = []
    references: dict[tuple, list[Tensor] | tuple[str, str]] = {}
    seconds_per_flop: dict[tuple, float] = {}
    for cell in tqdm(cells, desc="tam bench precision", unit="cell", disable=not progress):
        record = {"suite": "precision", **asdict(cell), "channels": CHANNELS, "heads": HEADS,
                  "positions": cell.height * cell.width,
                  "status": "ok", "error": None, "forward_finite": None, "backward_finite": None,
                  "relative_error": None, "bound": ERROR_BOUND[cell.dtype], "overflow": None,
                  "reference_max": None, "representable": None}
        cast = cell.mode == "cast"
        low = predict(cell.shape(), "training", dtype=DTYPES[cell.dtype] if cast else torch.float32,
                      amp="none" if cast else cell.dtype)
        series = (cell.kind, cell.dtype, cell.mode)
        forecast = seconds_per_flop[series] * low.flops if series in seconds_per_flop else None
        reason = _not_run(low.peak_bytes, memory_limit_bytes, forecast, max_case_s)
        if reason is None:
            key = (cell.kind, cell.dtype, cell.height, cell.width, cell.magnitude)
            if key not in references:
                references[key] = _reference(cell, device, memory_limit_bytes)
            reference = references[key]
            reason = reference if isinstance(reference, tuple) else None
        if reason is not None:
            record.update(status=reason[0], error=reason[1])
        else:
            start = time.perf_counter()
            record.update(_measure(cell, device, reference))
            seconds_per_flop[series] = (time.perf_counter() - start) / max(low.flops, 1)
        record.update(environment(device, started_under_load=under_load))
        records.append(record)
        if on_record is not None:
            on_record(records)
    return records


def _not_run(peak: int, limit: int, forecast: float | None, max_s: float | None) -> tuple[str, str] | None:
    if peak > limit:
        return "over budget", f"predicted {peak / 2**30:.3g} GiB > budget {limit / 2**30:.3g} GiB: not run"
    if max_s is not None and forecast is not None and forecast > max_s:
        return "skipped", f"forecast {forecast:.0f} s > {max_s:g} s: not run"
    return None


def _reference(cell: PrecisionCell, device: torch.device, limit: int) -> list[Tensor] | tuple[str, str]:
    shape = cell.shape()
    kind = REFERENCE_KIND.get(cell.kind, cell.kind)
    reference = BlockShape(kind, shape.channels, shape.height, shape.width, heads=shape.heads, batch=shape.batch)
    peak = predict(reference, "inference", dtype=torch.float64).peak_bytes
    if peak > limit:
        return "over budget", f"float64 reference predicted {peak / 2**30:.3g} GiB > budget: not run"
    try:
        return reference_branches(cell, device, activations(shape, cell.magnitude, device=device))
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        return "oom", f"float64 reference: {str(error).splitlines()[0][:160]}"


def _measure(cell: PrecisionCell, device: torch.device, reference: list[Tensor]) -> dict:
    x64 = activations(cell.shape(), cell.magnitude, device=device)
    try:
        branches, forward_finite, backward_finite, _ = _forward_backward(cell, device, x64)
    except Exception as error:
        if is_out_of_memory(error):
            return {"status": "oom", "error": str(error).splitlines()[0][:160]}
        if isinstance(error, (RuntimeError, NotImplementedError)) and "not implemented" in str(error):
            return {"status": "unsupported", "error": str(error).splitlines()[0][:160]}
        raise
    largest = max(float(r.abs().max()) for r in reference)
    result = {"forward_finite": forward_finite, "backward_finite": backward_finite,
              "relative_error": relative_error(branches, reference), "reference_max": largest,
              "representable": largest <= torch.finfo(DTYPES[cell.dtype]).max}
    if not (forward_finite and backward_finite):
        result["overflow"] = _forward_backward(cell, device, x64, watch=True)[3]
    return result
