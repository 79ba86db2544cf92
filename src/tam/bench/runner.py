"""Measure configurations: one record (a flat dict) per :class:`~tam.bench.suites.Case`."""

from __future__ import annotations

import datetime
import gc
import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import torch

from tam.amp import AMP_DTYPES
from tam.bench.cost import analytic_flops
from tam.bench.load import cores, load_average, measured_under_load
from tam.bench.measure import (
    PairedRatio,
    Timing,
    count_flops,
    cuda_peak_bytes,
    is_out_of_memory,
    matmul_rate,
    memory_limit,
    saved_tensor_bytes,
    time_fn,
    time_interleaved,
)
from tam.bench.suites import Case, paired_references
from tam.bench.workload import Workload, build_workload
from tam.device import device_name
from tam.layers.dispatch import last_dispatches

MB = 2**20


@dataclass(frozen=True)
class Settings:
    """How hard to measure.

    Args:
        budget_s: seconds of timed repetitions per timing (forward, and forward+backward).
        min_reps, max_reps: bounds on the repetition count.
        pair_min_reps: the fewest repetitions of a paired timing (:func:`measure_pair`); its claim quotes
            quartiles, which five samples do not pin down.
        memory_limit_bytes: on CPU, the most memory one configuration may map before it counts as out of
            memory (``None``: no limit).
        rss: also measure the peak RSS of a fresh subprocess per configuration (CPU only).
        under_load: the run began with more threads than free cores (:class:`tam.bench.load.ThreadChoice`):
            every record is marked as measured under load.
    """

    budget_s: float = 1.0
    min_reps: int = 5
    max_reps: int = 200
    pair_min_reps: int = 15
    memory_limit_bytes: int | None = None
    rss: bool = True
    under_load: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.min_reps <= self.max_reps or not 1 <= self.pair_min_reps <= self.max_reps:
            raise ValueError(f"need 1 <= min_reps, pair_min_reps <= max_reps, got min_reps={self.min_reps}, "
                             f"pair_min_reps={self.pair_min_reps}, max_reps={self.max_reps}")


def measure_case(
    case: Case,
    device: torch.device | str,
    settings: Settings,
    build: Callable[[Case, torch.device], Workload] = build_workload,
) -> dict:
    """Measure ``case`` on ``device``; running out of memory is recorded in the record, never raised.

    Phases, from the least memory to the most: build, forward (eval mode, ``inference_mode``), one
    instrumented training step (bytes saved for backward, FLOPs), timed training steps, and on CUDA the
    allocator peak of one step. The first phase that runs out of memory sets ``status="oom"`` and
    ``error``; what was measured before it stays in the record.

    Returns:
        a dict with the fields of ``case`` and ``device``, ``status``, ``error``, ``params``,
        ``forward_ms`` (+ ``_q1``/``_q3``/``_reps``), ``time_ms`` (forward+backward, or the training step of a
        network; + quartiles, extremes, reps), ``saved_mb``, ``peak_mb`` (CUDA), ``rss_mb`` (CPU subprocess),
        ``memory_mb`` (``peak_mb`` on CUDA, ``saved_mb`` on CPU), ``flops`` and ``flops_backward`` (counted),
        ``flops_analytic``, ``form`` and ``form_reason`` (the forms that the layers with more than one exact
        form ran, ``+``-joined, and why: :func:`~tam.layers.dispatch.last_dispatches`; ``None`` without such
        layers).
    """
    device = torch.device(device)
    cpu = device.type == "cpu"
    record: dict = {
        **case.to_dict(),
        "embed_channels": case.embed_channels,
        "device": device.type,
        "status": "ok",
        "error": None,
        "params": None,
        "flops": None,
        "flops_backward": None,
        "flops_analytic": analytic_flops(case, device),
        "form": None,
        "form_reason": None,
        "saved_mb": None,
        "peak_mb": None,
        "rss_mb": None,
        "memory_mb": None,
        **_timing("forward", None),
        **_timing("time", None),
    }
    timing = dict(budget_s=settings.budget_s, min_reps=settings.min_reps, max_reps=settings.max_reps)
    phase = "build"
    workload = None
    try:
        with memory_limit(settings.memory_limit_bytes if cpu else None):
            workload = build(case, device)
            record["params"] = workload.params

            phase = "forward"
            workload.module.eval()
            with torch.inference_mode():
                record.update(_timing("forward", time_fn(workload.forward, device, **timing)))
            record.update(_forms(workload.module))
            workload.module.train()

            phase = "forward+backward"
            # One instrumented step counts the bytes saved for backward and the FLOPs; it is also the
            # warm-up of the timed steps.
            flops: list[int] = []
            record["saved_mb"] = saved_tensor_bytes(
                lambda: flops.extend(count_flops(workload.forward, workload.backward)),
                exclude=(*workload.module.parameters(), *workload.module.buffers()),
            ) / MB
            record["flops"], record["flops_backward"] = flops
            record.update(_timing("time", time_fn(workload.step, device, warmup=0, **timing)))
            if not cpu:
                phase = "peak memory"
                record["peak_mb"] = cuda_peak_bytes(workload.step, device) / MB
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        record["status"] = "oom"
        record["error"] = f"out of memory in {phase}: {_first_line(error)}"
    finally:
        del workload
        _release_memory(device)
    record["memory_mb"] = record["saved_mb"] if cpu else record["peak_mb"]
    if cpu and settings.rss and record["status"] == "ok":
        from tam.bench.rss import peak_rss_bytes

        try:
            record["rss_mb"] = peak_rss_bytes(case, settings.memory_limit_bytes) / MB
        except MemoryError as error:
            record["error"] = f"peak RSS: {error}"
    return record


def measure_pair(
    case: Case,
    reference: Case,
    device: torch.device | str,
    settings: Settings,
    *,
    rounds: int = 1,
    build: Callable[[Case, torch.device], Workload] = build_workload,
) -> dict:
    """Time the training steps of ``case`` and ``reference`` interleaved (:func:`time_interleaved`).

    Both workloads are built and put in train mode; their steps alternate A B, B A, … for
    ``settings.budget_s × 2 × rounds`` seconds in all (as much as the sweep spent timing both), at least
    ``settings.pair_min_reps`` and at most ``settings.max_reps`` times, under the settings' CPU memory limit.
    Running out of memory is recorded, never raised.

    Returns:
        the paired fields of ``case``'s record: ``paired_reference`` (``reference.label()``),
        ``paired_ratio`` (median over repetitions of case's time ÷ reference's), ``paired_ratio_q1``,
        ``paired_ratio_q3``, ``paired_reps``, ``paired_error``; all ``None`` but ``paired_error`` after an
        out-of-memory.
    """
    device = torch.device(device)
    workloads: list[Workload] = []
    try:
        with memory_limit(settings.memory_limit_bytes if device.type == "cpu" else None):
            workloads = [build(c, device) for c in (case, reference)]
            for workload in workloads:
                workload.module.train()
            top, bottom = time_interleaved(
                [workload.step for workload in workloads], device, budget_s=settings.budget_s * 2 * rounds,
                min_reps=settings.pair_min_reps, max_reps=settings.max_reps,
            )
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        return _paired(None, error=f"out of memory paired with {reference.label()}: {_first_line(error)}")
    finally:
        del workloads
        _release_memory(device)
    return _paired(reference, PairedRatio.from_samples(top, bottom))


def add_paired_timing(
    record: dict,
    case: Case,
    reference: Case,
    device: torch.device | str,
    settings: Settings,
    *,
    rounds: int = 1,
    build: Callable[[Case, torch.device], Workload] = build_workload,
) -> None:
    """Add :func:`measure_pair`'s fields to ``case``'s ``record``, with ``paired_date`` (when the pair ended)
    and ``under_load`` also set when the load passed the cores by then."""
    record.update(measure_pair(case, reference, device, settings, rounds=rounds, build=build))
    after = environment(device, started_under_load=settings.under_load)
    record.update(paired_date=after["date"], under_load=record["under_load"] or after["under_load"])


def _forms(module: torch.nn.Module) -> dict:
    reports = last_dispatches(module).values()
    if not reports:
        return {}
    return {
        "form": "+".join(sorted({report.form for report in reports})),
        "form_reason": " | ".join(dict.fromkeys(report.reason for report in reports)),
    }


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0][:200]


def _release_memory(device: torch.device) -> None:
    """Free what the last measurement's workloads held (the caller has dropped them), so the next one
    starts from the same free memory."""
    gc.collect()
    if device.type != "cpu":
        torch.cuda.empty_cache()


def _paired(reference: Case | None, ratio: PairedRatio | None = None, error: str | None = None) -> dict:
    """The paired fields of a record (see :func:`measure_pair`); all ``None`` without a reference."""
    return {
        "paired_reference": reference.label() if reference else None,
        "paired_ratio": ratio.median if ratio else None,
        "paired_ratio_q1": ratio.q1 if ratio else None,
        "paired_ratio_q3": ratio.q3 if ratio else None,
        "paired_reps": ratio.reps if ratio else None,
        "paired_error": error,
    }


def _timing(prefix: str, t: Timing | None) -> dict:
    names = ("ms", "q1_ms", "q3_ms", "min_ms", "max_ms", "reps")
    values = (t.median_ms, t.q1_ms, t.q3_ms, t.min_ms, t.max_ms, t.reps) if t else (None,) * len(names)
    return {f"{prefix}_{name}": value for name, value in zip(names, values)}


def run_cases(
    cases: Iterable[Case],
    device: torch.device | str,
    settings: Settings,
    *,
    rounds: int = 1,
    pairs: bool = True,
    progress: bool = True,
    on_record: Callable[[list[dict]], object] | None = None,
    build: Callable[[Case, torch.device], Workload] = build_workload,
) -> list[dict]:
    """Measure every case in order, ``rounds`` times over, with a progress bar; records carry :func:`environment`,
    ``run_started`` and ``run_finished`` (UTC, the whole run's span, pairs included) and ``matmul_gflops``, the machine's peak matmul rate in the cases' dtype: the fastest of
    :func:`matmul_rate` taken before the first round and after each (a slow spell lowers one taking, and a
    peak set too low would let the compute bounds of the report claim too much).

    Each round sweeps the whole grid, so a slow spell of a shared machine falls on one round of every
    configuration rather than on all rounds of a few. A configuration's timings are those of its median
    round (by forward+backward time; the lower median for an even count), whole, so its quartiles stay its
    own; ``time_ms_rounds`` and ``forward_ms_rounds`` keep every round's median. Memory, FLOPs and the
    subprocess RSS (first round only) do not depend on the round.

    With ``pairs``, a last phase times each case against its reference (:func:`~tam.bench.suites.paired_references`)
    interleaved, by :func:`measure_pair`, and adds the paired fields to the case's record; cases without a
    reference, or all cases without ``pairs``, get them as ``None``. A pair is skipped (``paired_error``
    says why) where either side ran out of memory in the sweep.

    ``on_record(records)`` is called after each case of the first round with the records so far, after
    each later round and after each pair with all of them (e.g. to save them, so an interrupted run keeps
    what it measured).
    """
    from tqdm import tqdm

    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    cases = list(cases)
    references = paired_references(cases) if pairs else [None] * len(cases)
    pair_count = sum(reference is not None for reference in references)
    taken: list[list[dict]] = [[] for _ in cases]
    dtype = AMP_DTYPES[cases[0].amp] if cases else torch.float32
    started = _utc_now()
    rates = [matmul_rate(device, dtype, budget_s=settings.budget_s)]

    def summaries(done: list[list[dict]]) -> list[dict]:
        return [{**_median_round(t), "matmul_gflops": max(rates) / 1e9} for t in done]

    with tqdm(total=rounds * len(cases) + pair_count, desc="tam bench", unit="measurement", disable=not progress,
              dynamic_ncols=True) as bar:
        for round_index in range(rounds):
            round_settings = settings if round_index == 0 else replace(settings, rss=False)
            for index, case in enumerate(cases):
                bar.set_postfix_str(f"round {round_index + 1}/{rounds} {case.label()}")
                taken[index].append({**measure_case(case, device, round_settings, build=build),
                                     **environment(device, started_under_load=settings.under_load)})
                bar.update()
                if on_record is not None and round_index == 0:
                    on_record(summaries(taken[: index + 1]))
            rates.append(matmul_rate(device, dtype, budget_s=settings.budget_s))
            if on_record is not None and round_index > 0:
                on_record(summaries(taken))
        records = [{**summary, **_paired(None)} for summary in summaries(taken)]
        by_case = dict(zip(cases, records))
        done = 0
        for record, case, reference in zip(records, cases, references):
            if reference is None:
                continue
            done += 1
            bar.set_postfix_str(f"pair {done}/{pair_count} {case.label()} ÷ {reference.label()}")
            oom = [c.label() for c in (case, reference) if by_case[c]["status"] == "oom"]
            if oom:
                record.update(_paired(None, error=f"not paired: {' and '.join(oom)} ran out of memory in the sweep"))
            else:
                add_paired_timing(record, case, reference, device, settings, rounds=rounds, build=build)
            bar.update()
            if on_record is not None:
                on_record(records)
    finished = _utc_now()
    return [{**record, "run_started": started, "run_finished": finished} for record in records]


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _median_round(records: list[dict]) -> dict:
    """The record of the median round by ``time_ms``, with every round's medians and the first round's RSS."""
    timed = sorted((r for r in records if r["time_ms"] is not None), key=lambda r: r["time_ms"])
    median = timed[(len(timed) - 1) // 2] if timed else records[0]
    return {
        **median,
        "rss_mb": records[0]["rss_mb"],
        "rounds": len(records),
        "time_ms_rounds": [r["time_ms"] for r in records],
        "forward_ms_rounds": [r["forward_ms"] for r in records],
    }


def environment(device: torch.device | str, *, started_under_load: bool = False) -> dict:
    """Where and when a number is taken: machine, threads, load average, versions, date (UTC), and whether it was
    taken under load (:func:`tam.bench.load.measured_under_load`; CPU only: a GPU's kernels do not share the
    CPU's cores)."""
    device = torch.device(device)
    load = load_average()
    return {
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "load_avg_1m": None if load is None else round(load, 2),
        "under_load": device.type == "cpu" and measured_under_load(load, cores(), started_under_load),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": _utc_now(),
    }

