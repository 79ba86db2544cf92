"""Benchmark records to files: ``results.json``, ``results.md`` (tables, ratios, fitted exponents), PNG plots.

Every file is written to a temporary name beside it and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from tam.bench.suites import Case, bench_kinds, fastpath_kinds
from tam.files import write_atomic, write_text_atomic

# The fields that vary within each suite (the first is a plot's x axis).
AXIS = {
    "heads": ("heads",),
    "resolution": ("side",),
    "blocks": ("blocks",),
    "network": ("model",),
    "fastpath": ("side", "heads"),
}
SAME_SETUP = ("suite", "device", "heads", "side", "channels", "batch", "blocks", "model")


def write_report(records: Sequence[dict], out_dir: str | os.PathLike, *, plots: bool = True) -> list[Path]:
    """Write ``results.json``, ``results.md`` and (``plots``) one PNG per plotted suite into ``out_dir``.

    Returns:
        the paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [
        write_text_atomic(out / "results.json", json.dumps(list(records), indent=1)),
        write_text_atomic(out / "results.md", markdown(records)),
    ]
    for suite in ("heads", "resolution", "blocks") if plots else ():
        rows = [r for r in records if r["suite"] == suite]
        if rows:
            png = plot_png(rows, suite)
            written.append(write_atomic(out / f"{suite}.png", lambda file: file.write(png)))
    return written


def kind_order() -> tuple[str, ...]:
    """Row order of the tables: no attention, the floor, the linear-cost kinds, then the quadratic ones."""
    linear = fastpath_kinds()
    return ("none", "floor", *(k for k in linear if k != "floor"), *(k for k in bench_kinds() if k not in linear))


def _kind_rank(kind: str) -> int:
    order = kind_order()
    return order.index(kind) if kind in order else len(order)


# -- Markdown ---------------------------------------------------------------------------------------------


def markdown(records: Sequence[dict]) -> str:
    """The report: environment, how things are measured, the claims checked, one table per suite."""
    if not records:
        return "# tam bench\n\nNo configurations were measured.\n"
    first = records[0]
    loads = [r["load_avg_1m"] for r in records if r.get("load_avg_1m") is not None]
    # With rounds, a record carries the date of its median round; the pairs come after the sweep.
    # The run's start and end where recorded; else (older records) the measurements' dates, the pairs' included.
    dates = [d for r in records for d in (r["date"], r.get("paired_date"), r.get("run_started"), r.get("run_finished"))
             if d]
    lines = [
        "# tam bench",
        "",
        f"- Machine: {first['device_name']} (`{first['device']}`), torch threads: {first['threads']}"
        + (f", 1-min load average {min(loads):.1f}–{max(loads):.1f} while running" if loads else ""),
        f"- torch {first['torch']}, Python {first['python']}; {min(dates)} to {max(dates)} (UTC)",
        "- Inputs in " + ("`channels_last` memory format (as `tam train` runs)" if first.get("channels_last")
                          else "contiguous (NCHW) memory format")
        + ("" if first.get("amp", "none") == "none" else f"; every forward under `autocast` to {first['amp']}"
           f" (as `tam train --amp {first['amp']}`)"),
        "- Time: median of the timed repetitions after warm-up, [first–third quartile]"
        + (
            f"; the grid was swept {first['rounds']} times and each configuration shows its median round"
            if first.get("rounds", 1) > 1
            else ""
        )
        + "; *fwd* is the forward in"
        " eval mode under `inference_mode`, *fwd+bwd* a training step in train mode (forward, backward of"
        " a fixed dense gradient of `y` into the input and the weights; for a network: cross-entropy,"
        " backward and an SGD step).",
        "- Memory: "
        + (
            "peak allocated by one training step above what was allocated before it (`max_memory_allocated`)."
            if first["device"] == "cuda"
            else "bytes saved for backward by one forward (activations, counted once per storage; parameters"
            " excluded); *RSS*: peak resident memory of one training step in a fresh process, above its imports"
            + (" (not measured in this run: `--quick` turns it off unless `--rss` is given, `--no-rss` always)."
               if all(r.get("rss_mb") is None for r in records) else ".")
        ),
        "- FLOPs: forward, counted by `FlopCounterMode` (2 per multiply-add of convolutions, matmuls and fused"
        " attention; elementwise work not counted), then the analytic count of DESIGN §1 (for `tam`, of the"
        " form its dispatch runs, named beside the kind: transposed order or Gram form); they differ only for"
        " `cc`, whose kernel scores each position against itself twice.",
        "- `floor`: the block shell (projections, BN, residual) with no attention core, the cost no kind can"
        " go below. OOM: the configuration ran out of memory; what was measured before is kept.",
    ]
    if first.get("matmul_gflops") is not None:
        lines.append(
            f"- Peak matmul rate: {first['matmul_gflops']:.3g} GFLOP/s (the fastest of repeated large square"
            " matmuls in the run's dtype, taken before the sweep and after each round): no code does the FLOPs"
            " counted here faster."
        )
    loaded = sum(bool(r.get("under_load")) for r in records)
    if loaded:
        lines.append(
            f"- *Under load*: {loaded} of {len(records)} configurations were timed with more torch threads than"
            " the cores other work left free, or while the load average exceeded the cores; their times (marked"
            " *under load*) can be several times this machine's own cost. `--threads` and an idle machine avoid it."
        )
    if any(r.get("paired_ratio") is not None for r in records):
        lines.append(
            "- *Paired*: after the sweep, each configuration that a claim compares with a reference (a kind with"
            " `floor`, a network with `none`, TAM with itself at the fewest heads) was timed again"
            " alternately with it, training step by training step (A B, B A, …), so that a slow spell of the"
            " machine falls on both; the ratio is the median [quartiles] of the per-repetition ratios. Time"
            " claims use it where measured, else the quotient of the two medians (*medians*). The tables show"
            " both: the medians' quotient divides timings taken minutes apart in the sweep, so on a shared"
            " machine it can differ widely from the paired ratio; the paired one is the comparison."
        )
    lines.append("")
    lines += _claims(records)
    for suite in AXIS:
        rows = [r for r in records if r["suite"] == suite]
        if rows:
            lines += _suite_table(suite, rows)
    return "\n".join(lines) + "\n"


def _suite_table(suite: str, rows: list[dict]) -> list[str]:
    axis = AXIS[suite]
    base = "none" if suite == "network" else "floor"
    setup = _setup(suite, rows[0])
    paired = any(r.get("paired_reference") or r.get("paired_error") for r in rows)
    header = (
        f"| kind | {', '.join(axis)} | fwd ms | fwd+bwd ms [IQR] | nl ÷ kind (time) | kind ÷ {base} (time) "
        + ("| kind ÷ reference, paired [IQR] " if paired else "")
        + f"| memory MB | nl ÷ kind (mem) | kind ÷ {base} (mem) | RSS MB | GFLOP fwd (counted / analytic) | params |"
    )
    lines = [f"## {suite}: {setup}", "", header, "|" + "---|" * header.count(" | ") + "---|"]

    def where(row: dict) -> str:
        return ", ".join(str(row[field]) for field in axis)

    for row in sorted(rows, key=lambda r: (*(str(r[f]).zfill(8) for f in axis), _kind_rank(r["kind"]))):
        nl, floor = _reference(rows, row, "nl"), _reference(rows, row, base)
        time_cell = "OOM" if row["time_ms"] is None else (
            f"{_num(row['time_ms'])} [{_num(row['time_q1_ms'])}–{_num(row['time_q3_ms'])}]"
            + (" *under load*" if row.get("under_load") else "")
        )
        analytic = "" if row["flops_analytic"] is None else f" / {_gflop(row['flops_analytic'])}"
        lines.append(
            f"| {_kind(row)} | {where(row)} | {_num(row['forward_ms'])} | {time_cell} "
            f"| {_ratio(nl, row, 'time_ms')} | {_ratio(row, floor, 'time_ms')} "
            + (f"| {_paired_cell(row)} " if paired else "")
            + f"| {_num(row['memory_mb'])} "
            f"| {_ratio(nl, row, 'memory_mb')} | {_ratio(row, floor, 'memory_mb')} | {_num(row['rss_mb'])} "
            f"| {_gflop(row['flops'])}{analytic} | {row['params'] if row['params'] is not None else '—'} |"
        )
    errors = [
        f"- {r['kind']} at {', '.join(axis)} {where(r)}: {error}"
        for r in rows for error in (r["error"], r.get("paired_error")) if error
    ]
    return lines + ([""] + errors if errors else []) + [""]


def _kind(row: dict) -> str:
    """The kind, and the form it ran where it has more than one (records older than the field have none)."""
    return f"{row['kind']} ({row['form']})" if row.get("form") else row["kind"]


def _setup(suite: str, row: dict) -> str:
    if suite == "network":
        return f"{row['model']}, batch {row['batch']}, {row['side']}² images, one {row['heads']}-head block per stage"
    parts = {
        "side": f"{row['side']}²",
        "channels": f"{row['channels']} channels",
        "batch": f"batch {row['batch']}",
        "heads": f"{row['heads']} head(s)",
        "blocks": f"{row['blocks']} block(s)",
    }
    return ", ".join(text for field, text in parts.items() if field not in AXIS[suite])


def _reference(rows: list[dict], row: dict, kind: str) -> dict | None:
    for other in rows:
        if other["kind"] == kind and all(other[k] == row[k] for k in SAME_SETUP):
            return other
    return None


def _quotient(top: dict | None, bottom: dict | None, field: str) -> float | None:
    """``top[field] / bottom[field]``, or ``None`` where either is missing or the divisor is zero."""
    if top is None or bottom is None or top[field] is None or bottom[field] is None or bottom[field] == 0:
        return None
    return top[field] / bottom[field]


def _ratio(top: dict | None, bottom: dict | None, field: str) -> str:
    return _times(_quotient(top, bottom, field))


def _times(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}×" if value >= 10 else f"{value:.2f}×"


def _paired_cell(row: dict) -> str:
    """``row``'s paired ratio with its quartiles, e.g. ``1.02× [0.97–1.05]``, or ``—``."""
    if row.get("paired_ratio") is None:
        return "—"
    return f"{_times(row['paired_ratio'])} [{row['paired_ratio_q1']:.2f}–{row['paired_ratio_q3']:.2f}]"


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _gflop(flops: int | None) -> str:
    return "—" if flops is None else f"{flops / 1e9:.3g}"


# -- Claims -----------------------------------------------------------------------------------------------


def _claims(records: Sequence[dict]) -> list[str]:
    lines = []
    for suite, claims in (("heads", _heads_claims), ("resolution", _resolution_claims),
                          ("fastpath", _fastpath_claims), ("network", _network_claims)):
        rows = [r for r in records if r["suite"] == suite]
        if rows:
            lines += claims(rows)
    return ["## Claims, checked on these numbers", "", *lines] if lines else []


def _check(
    label: str,
    value: float | None,
    bound: float,
    at_least: bool,
    estimator: str | None = None,
    spread: tuple[float, float] | None = None,
) -> str:
    """One claim line: ``value`` against ``bound``, with the ``estimator`` that gave ``value`` if said.

    A measured time has a ``spread`` (the quartiles of its estimator): the claim reads "yes" only when the whole
    spread lies on the claimed side of the bound, "no" when it lies wholly on the other, and "not resolved"
    otherwise. A value without spread (memory, which does not vary between runs) is read as it is. A value
    within 1% of the bound gets four significant digits.
    """
    if value is None:
        return f"- {label}: not measured (out of memory or kind not run)"
    if spread is None:
        verdict = "yes" if (value >= bound if at_least else value <= bound) else "no"
    else:
        low, high = spread
        if low >= bound if at_least else high <= bound:
            verdict = "yes"
        elif high < bound if at_least else low > bound:
            verdict = "no"
        else:
            verdict = "not resolved: its IQR contains the bound"
    how = f"{estimator}; " if estimator else ""
    digits = 4 if abs(value - bound) <= 0.01 * abs(bound) else 3
    return f"- {label}: **{value:.{digits}g}** ({how}{'≥' if at_least else '≤'} {bound:g}: {verdict})"


def _time_estimate(
    top: dict | None, bottom: dict | None
) -> tuple[float | None, str, tuple[float, float] | None]:
    """``top``'s fwd+bwd time over ``bottom``'s, which estimator gave it, and its interquartile spread.

    The paired ratio (see :func:`tam.bench.runner.measure_pair`) where ``top`` was timed interleaved with
    ``bottom``, as ``"paired, IQR q1–q3, n reps"``; else the quotient of the two medians, as ``"medians"``,
    whose spread runs from ``top``'s first quartile over ``bottom``'s third to ``top``'s third over ``bottom``'s
    first (the widest the two timings' middle halves allow).
    """
    paired = top is not None and bottom is not None and top.get("paired_ratio") is not None
    if paired and top["paired_reference"] == _label(bottom):
        q1, q3 = top["paired_ratio_q1"], top["paired_ratio_q3"]
        return top["paired_ratio"], f"paired, IQR {q1:.3g}–{q3:.3g}, {top['paired_reps']} reps", (q1, q3)
    value = _quotient(top, bottom, "time_ms")
    if value is None or None in (top["time_q1_ms"], top["time_q3_ms"], bottom["time_q1_ms"], bottom["time_q3_ms"]):
        return value, "medians", None
    spread = (top["time_q1_ms"] / bottom["time_q3_ms"], top["time_q3_ms"] / bottom["time_q1_ms"])
    return value, f"medians, quartile range {spread[0]:.3g}–{spread[1]:.3g}", spread


def _label(record: dict) -> str:
    """The :meth:`Case.label` of the configuration that ``record`` measured."""
    return Case.from_dict({field.name: record[field.name] for field in fields(Case) if field.name in record}).label()


def _time_check(label: str, top: dict | None, bottom: dict | None, bound: float, at_least: bool) -> str:
    """A claim on ``top``'s fwd+bwd time over ``bottom``'s (:func:`_time_estimate`) against ``bound``."""
    value, estimator, spread = _time_estimate(top, bottom)
    loaded = any(r is not None and r.get("under_load") for r in (top, bottom))
    return _check(label, value, bound, at_least, estimator, spread) + (" *(under load)*" if loaded else "")


# Bound of kind ÷ floor in the fastpath claims: 1.15 by default; XCA's Gram form is held to 1.05 (issue #19).
FASTPATH_BOUNDS = {"xca": 1.05}


def _fastpath_claims(rows: list[dict]) -> list[str]:
    r0 = rows[0]
    lines = [f"Fast paths ({r0['channels']} channels, batch {r0['batch']}, {r0['device']}), fwd+bwd time ÷ floor:", ""]
    for row in sorted(rows, key=lambda r: (r["side"], r["heads"], _kind_rank(r["kind"]))):
        if row["kind"] != "floor":
            label = f"{row['kind']} ÷ floor at {row['side']}², {row['heads']} head(s)"
            bound = FASTPATH_BOUNDS.get(row["kind"], 1.15)
            lines.append(_time_check(label, row, _reference(rows, row, "floor"), bound, False))
    return lines + [""]


def _network_claims(rows: list[dict]) -> list[str]:
    r0 = rows[0]
    lines = [
        f"Network ({r0['model']}, batch {r0['batch']}, blocks {tuple(r0['attention_blocks'])}, {r0['heads']} heads,"
        f" {r0['device']}), training-step time ÷ the network without attention (and its counted FLOPs, forward"
        " and backward, ÷ those without):",
        "",
    ]
    for row in sorted(rows, key=lambda r: _kind_rank(r["kind"])):
        none = _reference(rows, row, "none")
        top, bottom = _step_flops(row), _step_flops(none)
        flops_note = "" if top is None or not bottom else f"; FLOPs {top / bottom:.3g}×"
        if row["kind"] == "tam":
            lines.append(_time_check("tam ÷ none", row, none, 1.10, False) + flops_note)
            lines += _compute_bound(row, none)
        elif row["kind"] != "none":
            ratio, estimator, _ = _time_estimate(row, none)
            result = "not measured" if ratio is None else f"{ratio:.3g} ({estimator})"
            lines.append(f"- {row['kind']} ÷ none: {result}{flops_note}")
    return lines + [""]


def _step_flops(record: dict | None) -> int | None:
    """The counted FLOPs of ``record``'s training step, forward plus backward (``None`` if not counted)."""
    if record is None or record["flops"] is None or record["flops_backward"] is None:
        return None
    return record["flops"] + record["flops_backward"]


def _compute_bound(row: dict, none: dict | None) -> list[str]:
    """How low the FLOPs that ``row`` adds to ``none`` let its time ratio go, at the machine's peak matmul rate.

    Whatever evaluation does those FLOPs needs ``added / peak`` seconds for them alone, so the ratio is at
    least ``1 + added / (peak · t)``, ``t`` the step without them. For ``t`` the fastest repetition of that
    step: a busy machine only adds time, so it is the closest estimate from above, and the bound stays one.
    Beside it, the rate the added work ran at in this run (the time ratio's share of ``t``).
    """
    ratio, _, _ = _time_estimate(row, none)
    peak = row.get("matmul_gflops")
    top, bottom = _step_flops(row), _step_flops(none)
    if ratio is None or peak is None or top is None or bottom is None:
        return []
    added = top - bottom
    base_ms = none["time_min_ms"]
    least_ms = added / (peak * 1e9) * 1e3
    ran_ms = (ratio - 1) * base_ms
    text = (
        f"- Compute bound: {row['kind']} adds {added / 1e9:.3g} GFLOP to a step of {base_ms:.3g} ms (its fastest"
        f" repetition); at this machine's peak matmul rate ({peak:.3g} GFLOP/s) they alone take {least_ms:.3g} ms,"
        f" so {row['kind']} ÷ none ≥ {1 + least_ms / base_ms:.3g} for any code that does them"
    )
    if ran_ms > 0:
        text += (f"; here they ran at {added / ran_ms / 1e6:.3g} GFLOP/s, the network without attention at"
                 f" {bottom / base_ms / 1e6:.3g}")
    return [text + "."]


def _heads_claims(rows: list[dict]) -> list[str]:
    def find(kind: str, heads: int) -> dict | None:
        return next((r for r in rows if r["kind"] == kind and r["heads"] == heads), None)

    def ratio(field: str, top: tuple[str, int], bottom: tuple[str, int]) -> float | None:
        return _quotient(find(*top), find(*bottom), field)

    def time_check(label: str, top: tuple[str, int], bottom: tuple[str, int], bound: float, at_least: bool) -> str:
        return _time_check(label, find(*top), find(*bottom), bound, at_least)

    all_heads = sorted({r["heads"] for r in rows})
    h = 8 if 8 in all_heads else all_heads[-1]
    low, high = all_heads[0], all_heads[-1]
    r0 = rows[0]
    lines = [
        f"Heads suite ({r0['side']}², {r0['channels']} channels, batch {r0['batch']}, {r0['device']}), at {h} heads:",
        "",
        time_check("nl ÷ tam, fwd+bwd time", ("nl", h), ("tam", h), 20, True),
        time_check("nl_sdpa ÷ tam, fwd+bwd time", ("nl_sdpa", h), ("tam", h), 5, True),
        _check("tam ÷ nl, memory", ratio("memory_mb", ("tam", h), ("nl", h)), 0.1, False),
        "",
    ]
    if low < high:
        lines += [
            f"From {low} to {high} heads (same embed width):",
            "",
            time_check(f"tam time at {high} ÷ at {low}", ("tam", high), ("tam", low), 1, False),
            _check(f"tam memory at {high} ÷ at {low}", ratio("memory_mb", ("tam", high), ("tam", low)), 1, False),
            _check(f"nl memory at {high} ÷ at {low}", ratio("memory_mb", ("nl", high), ("nl", low)), 8, True),
            "",
        ]
    return lines + _ranking([r for r in rows if r["heads"] == h], h)


def _ranking(rows: list[dict], heads: int) -> list[str]:
    """Every kind measured at ``heads`` heads, fastest first, with its rank by memory (saved for backward)."""
    timed = sorted((r for r in rows if r["time_ms"] is not None), key=lambda r: r["time_ms"])
    by_memory = sorted((r for r in rows if r["memory_mb"] is not None), key=lambda r: r["memory_mb"])
    memory_rank = {id(r): rank for rank, r in enumerate(by_memory, 1)}
    lines = [
        f"Every kind at {heads} heads, ranked by fwd+bwd time (medians of the sweep), with its rank by memory:",
        "",
        "| time rank | kind | fwd+bwd ms | ÷ floor | memory MB | memory rank |",
        "|---|---|---|---|---|---|",
    ]
    floor = next((r for r in rows if r["kind"] == "floor"), None)
    for rank, row in enumerate(timed, 1):
        lines.append(
            f"| {rank} | {_kind(row)} | {_num(row['time_ms'])} | {_ratio(row, floor, 'time_ms')} "
            f"| {_num(row['memory_mb'])} | {memory_rank.get(id(row), '—')} |"
        )
    return lines + [""]


def _resolution_claims(rows: list[dict]) -> list[str]:
    lines = [
        "Resolution suite: fitted exponent p of cost ∝ N^p (least squares on log-log, N = side²), over all sides"
        " and between the two largest measured ones; linear is 1, quadratic 2.",
        "",
        "| kind | time p (all) | time p (top two) | memory p (all) | memory p (top two) | FLOPs p (all) |",
        "|---|---|---|---|---|---|",
    ]
    for kind in kind_order():
        mine = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["side"])
        if not mine:
            continue
        cells = []
        for field, top_two in (("time_ms", False), ("time_ms", True), ("memory_mb", False), ("memory_mb", True),
                               ("flops", False)):
            points = [(r["side"] ** 2, r[field]) for r in mine if r[field]]
            points = points[-2:] if top_two else points
            cells.append("—" if len(points) < 2 else f"{fit_exponent(*zip(*points)):.2f}")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return lines + [""]


def fit_exponent(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Slope ``p`` of the least-squares line through ``(log x, log y)``: ``y ≈ c·x^p``.

    Example:
        >>> round(fit_exponent([1, 2, 4], [3, 12, 48]), 6)
        2.0
    """
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"need at least two (x, y) pairs of equal count, got {len(xs)} and {len(ys)}")
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    spread = sum((x - mx) ** 2 for x in lx)
    if spread == 0:
        raise ValueError("the x values must not all be equal")
    return sum((x - mx) * (y - my) for x, y in zip(lx, ly)) / spread


# -- Plots ------------------------------------------------------------------------------------------------


def plot_png(rows: Sequence[dict], suite: str) -> bytes:
    """PNG of :func:`plot_figure`."""
    buffer = io.BytesIO()
    plot_figure(rows, suite).savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def plot_figure(rows: Sequence[dict], suite: str):
    """fwd+bwd time (with its quartiles as error bars) and memory against the suite's axis, one line per kind,
    log scales, the legend beside the panels.

    The resolution suite is drawn against ``N = side²`` on a log axis; heads on a log₂ axis with a tick per
    measured count; blocks on a linear axis with integer ticks.

    Returns:
        a ``matplotlib.figure.Figure``.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    axis = AXIS[suite][0]
    figure = Figure(figsize=(11, 4), layout="constrained")
    for panel, (field, label) in zip(figure.subplots(1, 2), (("time_ms", "fwd+bwd time (ms), median and IQR"),
                                                             ("memory_mb", "memory (MB)"))):
        for kind in kind_order():
            mine = sorted((r for r in rows if r["kind"] == kind and r[field]), key=lambda r: r[axis])
            if not mine:
                continue
            xs = [r[axis] ** 2 if suite == "resolution" else r[axis] for r in mine]
            ys = [r[field] for r in mine]
            if field == "time_ms":
                quartiles = [[y - r["time_q1_ms"] for y, r in zip(ys, mine)], [r["time_q3_ms"] - y for y, r in zip(ys, mine)]]
                panel.errorbar(xs, ys, yerr=quartiles, marker="o", capsize=3, label=kind)
            else:
                panel.plot(xs, ys, marker="o", label=kind)
        panel.set_yscale("log")
        if suite == "resolution":
            panel.set_xscale("log")
            panel.set_xlabel("positions N = side²")
        elif suite == "heads":
            panel.set_xscale("log", base=2)
            values = sorted({r["heads"] for r in rows})
            panel.set_xticks(values, [str(v) for v in values])
            panel.set_xlabel("heads (embed width fixed)")
        else:
            panel.xaxis.set_major_locator(MaxNLocator(integer=True))
            panel.set_xlabel("stacked blocks")
        panel.set_ylabel(label)
        panel.grid(True, which="both", alpha=0.3)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", title="kind")
    first = rows[0]
    figure.suptitle(f"tam bench · {suite} · {first['device_name']} · torch {first['torch']}", fontsize=9)
    return figure
