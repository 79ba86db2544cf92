"""``tam bench --suite segmentation``: every kind on the feature maps a segmentation head sees.

Grid (``--quick`` in brackets): 512 channels (a dilated ResNet's stage 4 after the usual reduction), maps
16×32, 32×64, 64×128 (training crops 512×1024 at stride 8), 128×256 (a whole 1024×2048 image at stride 8)
[8×16, 16×32], 1 and 8 heads; inference (eval forward under ``inference_mode``) at batch 1 and the training
step (forward and backward) at batch 1 everywhere and at batch 2 on 64×128 [16×32]. The smaller maps place
the sizes at which kinds cross.

Each configuration is first predicted (:func:`~tam.bench.memory_model.predict`): one predicted above the
memory budget is recorded as over budget and not run; one whose time, extrapolated by the FLOPs ratio from
the kind's last configuration measured in the same phase, passes ``max_case_s`` is recorded as skipped. The others run in a child
process per kind (:class:`~tam.bench.worker.Worker`), which records running out of memory (under the
budget on CPU) instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from tam.bench.memory_model import PHASES, BlockShape, predict
from tam.bench.worker import Worker

CHANNELS = 512
SIDES = ((16, 32), (32, 64), (64, 128), (128, 256))
QUICK_SIDES = ((8, 16), (16, 32))
HEADS = (1, 8)
MB = 2**20


def scale_kinds() -> tuple[str, ...]:
    """The benchmark kinds of the attention registry (:func:`tam.bench.suites.bench_kinds`), but the ``floor``."""
    from tam.bench.suites import bench_kinds

    return tuple(kind for kind in bench_kinds() if kind != "floor")


@dataclass(frozen=True)
class ScaleCase:
    """One configuration: a block shape and a phase (``"inference"`` or ``"training"``)."""

    shape: BlockShape
    phase: str

    def label(self) -> str:
        return f"{self.shape.label()} {self.phase}"


def segmentation_cases(kinds: Sequence[str] | None = None, *, quick: bool = False) -> list[ScaleCase]:
    """The grid above, small maps first and every kind at one point before the next.

    Example:
        >>> cases = segmentation_cases(["tam"], quick=True)
        >>> [case.label() for case in cases[:3]]
        ['tam h1 8×16 512ch b1 inference', 'tam h8 8×16 512ch b1 inference', 'tam h1 8×16 512ch b1 training']
    """
    kinds = scale_kinds() if kinds is None else tuple(kinds)
    sides = QUICK_SIDES if quick else SIDES
    batch_two = sides[-1] if quick else (64, 128)
    cases = []
    for height, width in sides:
        points = [(phase, heads, 1) for phase in PHASES for heads in HEADS]
        if (height, width) == batch_two:
            points += [("training", heads, 2) for heads in HEADS]
        for phase, heads, batch in points:
            for kind in kinds:
                cases.append(ScaleCase(BlockShape(kind, CHANNELS, height, width, heads=heads, batch=batch), phase))
    return cases


def run_segmentation(
    cases: Sequence[ScaleCase],
    device: torch.device | str,
    *,
    memory_limit_bytes: int,
    budget_s: float,
    threads: int,
    max_case_s: float | None = None,
    on_record: Callable[[list[dict]], object] | None = None,
    progress: bool = True,
    under_load: bool = False,
) -> list[dict]:
    """Predict and measure every case in order; one record each (see :func:`case_record`).

    ``memory_limit_bytes``: the budget; over it a case is not run (predicted) or counts as out of memory
    (measured). ``budget_s``: seconds of timed calls per case. ``max_case_s``: skip a case whose forecast
    (its two calls, warm-up and measured, at the FLOP rate of the kind's last case in that phase) is longer.
    ``on_record(records)`` after each case.
    """
    from tqdm import tqdm

    from tam.bench.runner import environment

    device = torch.device(device)
    workers: dict[str, Worker] = {}
    last: dict[tuple, dict] = {}  # (kind, phase) -> its last measured record: the FLOP rate of the next one
    records: list[dict] = []
    try:
        for case in tqdm(cases, desc="tam bench segmentation", unit="config", disable=not progress):
            shape = case.shape
            prediction = predict(shape, case.phase)
            record = case_record(case, prediction.peak_bytes, prediction.flops)
            series = (shape.kind, case.phase)
            forecast = _forecast_s(last.get(series), prediction.flops)
            if prediction.peak_bytes > memory_limit_bytes:
                record.update(status="over budget", error=(
                    f"predicted {prediction.peak_bytes / 2**30:.3g} GiB > budget {memory_limit_bytes / 2**30:.3g} GiB: not run"))
            elif max_case_s is not None and forecast is not None and 2 * forecast > max_case_s:
                record.update(status="skipped", error=(
                    f"forecast {2 * forecast:.0f} s for warm-up and measured call > {max_case_s:g} s: not run"))
            else:
                worker = workers.setdefault(shape.kind, Worker(str(device), threads))
                answer = worker.measure(shape, case.phase, budget_s=budget_s, memory_limit_bytes=memory_limit_bytes)
                record.update(
                    status=answer["status"], error=answer["error"],
                    measured_mb=None if answer["peak_bytes"] is None else answer["peak_bytes"] / MB,
                    **{key: answer[key] for key in ("time_ms", "time_q1_ms", "time_q3_ms", "reps")},
                )
                if answer["time_ms"] is not None:
                    last[series] = record
            record.update(environment(device, started_under_load=under_load))
            records.append(record)
            if on_record is not None:
                on_record(records)
    finally:
        for worker in workers.values():
            worker.close()
    return records


def case_record(case: ScaleCase, predicted_bytes: int, flops: int) -> dict:
    """The fields of one record before measuring: the shape, phase, prediction, and empty measurements."""
    return {
        "suite": "segmentation",
        **asdict(case.shape),
        "positions": case.shape.positions,
        "phase": case.phase,
        "predicted_mb": predicted_bytes / MB,
        "flops": flops,
        "status": "ok",
        "error": None,
        "measured_mb": None,
        "time_ms": None,
        "time_q1_ms": None,
        "time_q3_ms": None,
        "reps": None,
    }


def _forecast_s(previous: dict | None, flops: int) -> float | None:
    """Seconds of one call at ``flops``, at the FLOP rate of ``previous`` (``None`` without one)."""
    if previous is None or not previous["flops"]:
        return None
    return previous["time_ms"] / 1e3 * flops / previous["flops"]
