"""`tam bench`: time, memory and FLOPs of every attention kind, written as JSON, Markdown and PNG plots.

Example:
    tam bench --quick --out results/bench/cpu-quick      # reduced grid, under 2 minutes on 2 CPU cores
    tam bench --suite heads resolution --out runs/bench  # full grids
    tam bench --device cuda --out results/bench/h100
    tam bench --device cuda --amp bf16 --suite fastpath network --out results/bench/h100-bf16
    tam bench --device cuda --suite dispatch --out runs/dispatch   # fit the dispatch rule's constant here
    tam bench --suite segmentation precision --memory-limit 6 --max-case-seconds 60 --out runs/scale
"""

from __future__ import annotations

import argparse
import time

from tam.amp import AMP_MODES
from tam.bench.suites import SUITES, bench_kinds
from tam.errors import UserError, check_range
from tam.runfolder import RunFolder

SCALE_SUITES = ("segmentation", "precision")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--suite", nargs="+", choices=(*SUITES, "all", "dispatch", *SCALE_SUITES), default=["all"],
        help="suites to run (default: all): heads, resolution, blocks, fastpath, network; dispatch (not in all) "
        "times every exact form of the layers that have several and fits the dispatch rule's constant; "
        "segmentation (512 channels up to 128×256: time, predicted and measured memory, largest map per budget) "
        "and precision (fp16/bf16 finiteness and error matrix) run on their own",
    )
    parser.add_argument(
        "--kinds", nargs="+", choices=tuple(bench_kinds()), default=list(bench_kinds()),
        help="attention kinds to measure (default: all; nl is the naive Non-local, nl_sdpa the fused one)",
    )
    parser.add_argument(
        "--heads", nargs="+", type=int, default=None, metavar="H",
        help="keep only these head counts of the heads and fastpath suites (default: their whole grids)",
    )
    parser.add_argument("--quick", action="store_true", help="reduced grid and fewer repetitions (< 2 min on CPU)")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="CPU threads of torch (default: torch's own count, capped by the cores that the 1-min load average "
        "leaves free, at least 1: threads beyond the free cores stall at every op waiting for one); the choice is "
        "printed, and costs measured with more threads than free cores are marked under load",
    )
    parser.add_argument("--out", default="runs/bench", help="output folder (default: runs/bench)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an --out that holds another command's run or files of your own")
    parser.add_argument(
        "--budget", type=float, default=None, metavar="SECONDS",
        help="seconds of timed repetitions per timing (default: 0.1 with --quick, else 1.0)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, metavar="K",
        help="sweep the grid K times and keep each configuration's median round (default: 1); rounds spread "
        "the slow spells of a shared machine over every configuration",
    )
    parser.add_argument(
        "--pairs", action=argparse.BooleanOptionalAction, default=True,
        help="after the sweep, time each compared pair (a kind and the floor, a network and the one without "
        "attention, TAM at many heads and at the fewest) interleaved, A B B A …, for the claims (default: on)",
    )
    parser.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=True,
        help="feed blocks and networks channels_last inputs, as tam train does (default: on)",
    )
    parser.add_argument(
        "--amp", choices=AMP_MODES, default="none",
        help="run every forward under autocast to bf16 or fp16, as tam train --amp does (default: none, float32)",
    )
    parser.add_argument(
        "--memory-limit", type=float, default=None, metavar="GB",
        help="memory one configuration may take before it counts as out of memory (default: half of the memory "
        "available at start); the segmentation and precision suites do not run a configuration whose predicted "
        "peak passes it (there it applies on CUDA too; default 90%% of the GPU's memory)",
    )
    parser.add_argument(
        "--max-case-seconds", type=float, default=None, metavar="S",
        help="segmentation and precision suites: skip a configuration whose time, extrapolated from the size "
        "before it by the FLOPs ratio, passes S seconds (default: no limit)",
    )
    parser.add_argument(
        "--rss", action=argparse.BooleanOptionalAction, default=None,
        help="CPU only: peak RSS of each configuration in a fresh process (default: on, off with --quick)",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from tam.device import resolve_device

    device = resolve_device(args.device)
    for flag, value in (("--budget", args.budget), ("--memory-limit", args.memory_limit),
                        ("--max-case-seconds", args.max_case_seconds)):
        if value is not None:
            check_range(flag, value, low=0, low_open=True)
    for flag, value in (("--threads", args.threads), ("--rounds", args.rounds)):
        if value is not None:
            check_range(flag, value, low=1, integer=True)
    scale = [suite for suite in args.suite if suite in SCALE_SUITES]
    if scale and len(scale) != len(args.suite):
        raise UserError(f"--suite {' '.join(scale)} run on their own; run the other suites in another call")
    if device.type != "cpu" and (args.rss or (args.memory_limit and not scale)):
        raise UserError(f"--rss and --memory-limit are for CPU runs; --device {args.device} reports the CUDA peak")
    if scale:
        from tam.bench.load import choose_threads

        cpu = device.type == "cpu"
        choice = choose_threads(args.threads, torch.get_num_threads(), command="tam bench") if args.threads or cpu else None
        return _run_scale(scale, args, device, under_load=choice is not None and choice.under_load and cpu)
    start = time.perf_counter()
    # Claimed before measuring (and before anything prints): an --out that cannot be written fails now.
    with RunFolder.claim(args.out, command="bench", overwrite=args.overwrite) as run:
        records, paths = _measure(args, device, run.path)
    if records:
        oom = sum(r["status"] == "oom" for r in records)
        pairs = sum(r["paired_reference"] is not None or r["paired_error"] is not None for r in records)
        loaded = sum(bool(r.get("under_load")) for r in records)
        print(
            f"{len(records)} configurations ({oom} out of memory) × {args.rounds} round(s) + {pairs} paired "
            f"timings = {len(records) * args.rounds + pairs} measurements, on {records[0]['device_name']} in "
            f"{time.perf_counter() - start:.0f} s; torch {torch.__version__}"
            + (f"; {loaded} configurations measured under load (marked in results.md)" if loaded else "")
        )
    for path in paths:
        print(f"  {path}")
    return 0


def _measure(args: argparse.Namespace, device, out) -> tuple[list[dict], list]:
    """Run the chosen suites on ``device``, writing the report into ``out`` as records come; the dispatch
    suite first, into its own files."""
    import torch

    from tam.bench.load import choose_threads
    from tam.bench.report import write_report
    from tam.bench.runner import Settings, run_cases
    from tam.bench.suites import suite_cases

    cpu = device.type == "cpu"
    choice = choose_threads(args.threads, torch.get_num_threads(), command="tam bench") if args.threads or cpu else None
    limit = None
    if cpu:
        limit = int(args.memory_limit * 2**30) if args.memory_limit else _available_memory() // 2
    settings = Settings(
        budget_s=args.budget or (0.1 if args.quick else 1.0),
        min_reps=3 if args.quick else 5,
        max_reps=50 if args.quick else 200,
        pair_min_reps=5 if args.quick else 15,
        memory_limit_bytes=limit,
        rss=cpu and (args.rss if args.rss is not None else not args.quick),
        under_load=choice is not None and choice.under_load and cpu,
    )
    suites = SUITES if "all" in args.suite else tuple(s for s in SUITES if s in args.suite)
    try:
        cases = [case for suite in suites for case in suite_cases(
            suite, quick=args.quick, kinds=tuple(args.kinds), channels_last=args.channels_last, amp=args.amp,
            heads=None if args.heads is None else tuple(args.heads))]
    except ValueError as error:
        raise UserError(f"--heads: {error}") from None
    paths = _calibrate(args, device, settings, out) if "dispatch" in args.suite else []
    if not cases:
        return [], paths
    records = run_cases(cases, device, settings, rounds=args.rounds, pairs=args.pairs,
                        on_record=lambda so_far: write_report(so_far, out, plots=False))
    return records, paths + write_report(records, out)


def _run_scale(suites: list[str], args: argparse.Namespace, device, *, under_load: bool) -> int:
    """The segmentation and precision suites (:mod:`tam.bench.suites_scale`, :mod:`tam.bench.precision`)."""
    import torch

    from tam.bench.precision import precision_cells, run_precision
    from tam.bench.report_scale import write_scale_report
    from tam.bench.suites_scale import run_segmentation, scale_kinds, segmentation_cases

    if args.memory_limit:
        limit = int(args.memory_limit * 2**30)
    elif device.type == "cpu":
        limit = _available_memory() // 2
    else:
        limit = int(0.9 * torch.cuda.get_device_properties(device).total_memory)
    kinds = [kind for kind in scale_kinds() if kind in args.kinds]
    start = time.perf_counter()
    with RunFolder.claim(args.out, command="bench", overwrite=args.overwrite) as run:
        for suite in suites:
            def save(records, suite=suite, final=False):
                return write_scale_report(suite, records, run.path, budget_bytes=limit, final=final)

            if suite == "segmentation":
                records = run_segmentation(
                    segmentation_cases(kinds, quick=args.quick), device, memory_limit_bytes=limit,
                    budget_s=args.budget or (0.1 if args.quick else 1.0), threads=torch.get_num_threads(),
                    max_case_s=args.max_case_seconds, on_record=save, under_load=under_load,
                )
            else:
                records = run_precision(precision_cells(kinds, quick=args.quick), device, memory_limit_bytes=limit,
                                        max_case_s=args.max_case_seconds, on_record=save, under_load=under_load)
            for path in save(records, final=True):
                print(f"  {path}")
    print(f"{', '.join(suites)} on {device} in {time.perf_counter() - start:.0f} s; budget {limit / 2**30:.3g} GiB;"
          f" torch {torch.__version__}")
    return 0


def _calibrate(args: argparse.Namespace, device, settings, out) -> list:
    """The dispatch suite: time the forms, write ``dispatch.json`` and ``dispatch.md``, print the fit."""
    from tam.bench.calibrate import dispatch_grid, run_dispatch, summary_lines, write_dispatch

    records = run_dispatch(
        dispatch_grid(args.quick), device, budget_s=settings.budget_s, min_reps=settings.min_reps,
        max_reps=settings.max_reps, channels_last=args.channels_last, amp=args.amp,
        on_record=lambda so_far: write_dispatch(so_far, out),
    )
    for line in summary_lines(records):
        print(line)
    return write_dispatch(records, out)


def _available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``), or 8 GiB where the system does not say."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30
