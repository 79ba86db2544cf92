"""Reports of the scale suites: ``segmentation.md`` / ``precision.md`` (and their ``.json`` and ``.png``).

The segmentation report answers, per kind: predicted against measured peak memory, time, the largest map
that fits a budget (the memory model bisected over sides at aspect 1:2, for the run's budget and for 16 and
80 GiB), and the size at which the kind crosses fused Non-local in time (measured) and memory (model).
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from tam.bench.memory_model import crossover_side, largest_side
from tam.bench.precision import DTYPES
from tam.files import write_atomic, write_text_atomic

GIB = 2**30
BUDGETS_GIB = (16, 80)
REFERENCE = "nl_sdpa"


def write_scale_report(suite: str, records: Sequence[dict], out_dir: str | os.PathLike, *, budget_bytes: int,
                       final: bool = True) -> list[Path]:
    """Write ``<suite>.json``, and when ``final`` ``<suite>.md`` and ``<suite>.png``, into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_text_atomic(out / f"{suite}.json", json.dumps(list(records), indent=1))]
    if final and records:
        text = segmentation_markdown(records, budget_bytes) if suite == "segmentation" else precision_markdown(records)
        png = segmentation_png(records) if suite == "segmentation" else precision_png(records)
        written.append(write_text_atomic(out / f"{suite}.md", text))
        written.append(write_atomic(out / f"{suite}.png", lambda file: file.write(png)))
    return written


def _header(records: Sequence[dict], title: str) -> list[str]:
    first = records[0]
    loads = [r["load_avg_1m"] for r in records if r.get("load_avg_1m") is not None]
    dates = [r["date"] for r in records]
    return [
        f"# tam bench · {title}",
        "",
        f"- Machine: {first['device_name']}, torch threads: {first['threads']}"
        + (f", 1-min load average {min(loads):.1f}–{max(loads):.1f} while running" if loads else ""),
        f"- torch {first['torch']}, Python {first['python']}; {min(dates)} to {max(dates)} (UTC)",
    ]


# -- segmentation -------------------------------------------------------------------------------------------


def segmentation_markdown(records: Sequence[dict], budget_bytes: int) -> str:
    """Tables of time and memory per configuration, the largest sides, the crossovers and what did not run."""
    lines = _header(records, "segmentation") + [
        f"- Budget: {budget_bytes / GIB:.3g} GiB; a configuration predicted above it is not run (*over budget*).",
        "- *predicted*: the memory model (`tam.bench.memory_model`: the bytes every op of the block allocates"
        " and frees, counted on fake tensors); *measured*: on CUDA the allocator's peak above what was"
        " allocated before, on CPU the growth of a fresh process's resident memory over one call after a"
        " warm-up call. Inference: eval forward under `inference_mode`; training: forward and backward of a"
        " dense gradient of y (weight and input gradients allocated). Time: median of the timed calls.",
        "",
        "| kind | heads | map | N | batch | phase | time ms [IQR] | reps | predicted MB | measured MB"
        " | measured ÷ predicted | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        time_cell = "—" if r["time_ms"] is None else f"{_num(r['time_ms'])} [{_num(r['time_q1_ms'])}–{_num(r['time_q3_ms'])}]"
        ratio = "—" if r["measured_mb"] is None else f"{r['measured_mb'] / r['predicted_mb']:.3f}"
        lines.append(
            f"| {r['kind']} | {r['heads']} | {r['height']}×{r['width']} | {r['positions']} | {r['batch']} | {r['phase']}"
            f" | {time_cell} | {r['reps'] or '—'} | {_num(r['predicted_mb'])} | {_num(r['measured_mb'])} | {ratio}"
            f" | {r['status']} |"
        )
    ratios = [r["measured_mb"] / r["predicted_mb"] for r in records if r["measured_mb"] is not None]
    if ratios:
        worst = max(ratios, key=lambda v: abs(v - 1))
        lines += ["", f"Measured ÷ predicted peak memory over the {len(ratios)} configurations that ran:"
                  f" {min(ratios):.3f} to {max(ratios):.3f} (worst {abs(worst - 1):.1%} from the model;"
                  f" within 15%: {'yes' if abs(worst - 1) <= 0.15 else 'no'})."]
    lines += ["", *_claims(records)]
    lines += ["", *_largest_sides(records, budget_bytes), "", *_crossovers(records)]
    not_run = [f"- {_where(r)}: {r['status']}: {r['error']}" for r in records if r["error"]]
    if not_run:
        lines += ["", "## Not run or out of memory", "", *not_run]
    return "\n".join(lines) + "\n"


def _find(records: Sequence[dict], kind: str, heads: int, side: tuple[int, int], phase: str, batch: int = 1):
    return next((r for r in records if r["kind"] == kind and r["heads"] == heads and (r["height"], r["width"]) == side
                 and r["phase"] == phase and r["batch"] == batch), None)


def _claims(records: Sequence[dict]) -> list[str]:
    """Issue #21's acceptance 2 at the largest map of the run, 8 heads, batch 1."""
    side = max((r["height"], r["width"]) for r in records)
    tam_train = _find(records, "tam", 8, side, "training")
    tam_fwd, nl_fwd = (_find(records, kind, 8, side, "inference") for kind in ("tam", REFERENCE))
    naive_fwd = _find(records, "nl", 8, side, "inference")
    if tam_train is None or tam_fwd is None:
        return []
    lines = [f"## At {side[0]}×{side[1]}, {tam_fwd['channels']} channels, batch 1, 8 heads", ""]
    lines.append(f"- TAM training step: {tam_train['status']}, measured {_num(tam_train['measured_mb'])} MB,"
                 f" predicted {_num(tam_train['predicted_mb'])} MB.")
    for other in (nl_fwd, naive_fwd):
        if other is None:
            continue
        mine = tam_fwd["measured_mb"] if tam_fwd["measured_mb"] is not None else tam_fwd["predicted_mb"]
        theirs = other["measured_mb"] if other["measured_mb"] is not None else other["predicted_mb"]
        how = "measured" if other["measured_mb"] is not None else f"predicted ({other['status']})"
        lines.append(f"- TAM forward peak ÷ {other['kind']} forward peak: **{mine / theirs:.3g}** ({how};"
                     f" ≤ 0.1: {'yes' if mine / theirs <= 0.1 else 'no'}).")
    return lines


def _largest_sides(records: Sequence[dict], budget_bytes: int) -> list[str]:
    kinds = list(dict.fromkeys(r["kind"] for r in records))
    channels = records[0]["channels"]
    budgets = [(budget_bytes, f"{budget_bytes / GIB:.3g} GiB (this run)"), *((b * GIB, f"{b} GiB") for b in BUDGETS_GIB)]
    lines = [
        f"## Largest map that fits a budget (memory model, maps H × 2H, {channels} channels, batch 1, float32)",
        "",
        "Bisection over H of the predicted peak; ≥ 16384 means the search stopped there.",
        "",
        "| kind | heads | phase | " + " | ".join(label for _, label in budgets) + " |",
        "|---|---|---|" + "---|" * len(budgets),
    ]
    for kind in kinds:
        for heads in sorted({r["heads"] for r in records}):
            for phase in ("inference", "training"):
                cells = []
                for budget, _ in budgets:
                    side = largest_side(kind, channels, budget, phase, heads=heads)
                    cells.append("none" if side is None else f"{'≥ ' if side >= 1 << 14 else ''}{side}×{2 * side}")
                lines.append(f"| {kind} | {heads} | {phase} | " + " | ".join(cells) + " |")
    return lines


def _crossovers(records: Sequence[dict]) -> list[str]:
    """Where each kind crosses fused Non-local: time from the measured sizes, memory from the model."""
    kinds = [k for k in dict.fromkeys(r["kind"] for r in records) if k != REFERENCE]
    channels = records[0]["channels"]
    lines = [
        f"## Crossing fused Non-local ({REFERENCE}), batch 1",
        "",
        "Time: the N where the measured time ratio kind ÷ nl_sdpa passes 1, interpolated log-log between the"
        " two measured maps around it. Memory: the smallest map from which the kind's predicted peak stays at or"
        " below nl_sdpa's (model).",
        "",
        "| kind | heads | phase | time: kind ÷ nl_sdpa over the measured N | time crossover N | memory crossover |",
        "|---|---|---|---|---|---|",
    ]
    for kind in kinds:
        for heads in sorted({r["heads"] for r in records}):
            for phase in ("inference", "training"):
                pairs = []
                for r in sorted((r for r in records if r["kind"] == kind and r["heads"] == heads and r["phase"] == phase
                                 and r["batch"] == 1), key=lambda r: r["positions"]):
                    other = _find(records, REFERENCE, heads, (r["height"], r["width"]), phase)
                    if r["time_ms"] is not None and other is not None and other["time_ms"] is not None:
                        pairs.append((r["positions"], r["time_ms"] / other["time_ms"]))
                ratios = ", ".join(f"{n}: {ratio:.3g}" for n, ratio in pairs) or "—"
                lines.append(f"| {kind} | {heads} | {phase} | {ratios} | {time_crossover(pairs)}"
                             f" | {_memory_crossover(records, kind, heads, phase)} |")
    return lines


def _memory_crossover(records: Sequence[dict], kind: str, heads: int, phase: str) -> str:
    """Where ``kind``'s predicted peak falls to fused Non-local's or below: the grid's predictions bracket it,
    the model bisects within the bracket."""
    sides = sorted({(r["height"], r["width"]) for r in records if r["batch"] == 1}, key=lambda s: s[0])
    rows = [(side, _find(records, kind, heads, side, phase), _find(records, REFERENCE, heads, side, phase))
            for side in sides]
    rows = [(side, mine, theirs) for side, mine, theirs in rows if mine is not None and theirs is not None]
    if not rows:
        return "—"
    below = [mine["predicted_mb"] <= theirs["predicted_mb"] for _, mine, theirs in rows]
    if below[0]:
        return f"at or below from the smallest map ({rows[0][0][0]}×{rows[0][0][1]}) on" + (
            "" if all(below) else ", not at every larger one")
    if not any(below):
        return f"above at every map (to {rows[-1][0][0]}×{rows[-1][0][1]})"
    first = below.index(True)
    (low, _), (high, _) = rows[first - 1][0], rows[first][0]
    channels, aspect = rows[0][1]["channels"], rows[0][0][1] // rows[0][0][0]
    side = crossover_side(kind, REFERENCE, channels, phase, heads=heads, aspect=aspect, low=low, high=high)
    return "—" if side is None else f"N = {aspect * side * side} ({side}×{aspect * side})"


def time_crossover(pairs: Sequence[tuple[int, float]]) -> str:
    """Where the ratio (kind ÷ reference, by N) passes 1, interpolated log-log, as text.

    Example:
        >>> time_crossover([(100, 2.0), (400, 0.5)])
        'N ≈ 200 (faster above)'
        >>> time_crossover([(100, 0.5), (400, 0.25)])
        'faster at every N measured (from 100)'
    """
    if not pairs:
        return "—"
    for (n0, r0), (n1, r1) in zip(pairs, pairs[1:]):
        if (r0 - 1) * (r1 - 1) < 0:
            t = math.log(r0) / (math.log(r0) - math.log(r1))
            n = math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0)))
            return f"N ≈ {n:.3g} ({'faster' if r1 < 1 else 'slower'} above)"
    state = "faster" if pairs[0][1] < 1 else "slower"
    if all((r < 1) == (pairs[0][1] < 1) for _, r in pairs):
        return f"{state} at every N measured (from {pairs[0][0]})"
    return "crosses more than once"


def _where(r: dict) -> str:
    return f"{r['kind']} h{r['heads']} {r['height']}×{r['width']} b{r['batch']} {r['phase']}"


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def segmentation_png(records: Sequence[dict]) -> bytes:
    """Time and peak memory against N (log-log), batch 1, one colour per kind; memory predicted (line) and
    measured (markers), both phases."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4.5), layout="constrained")
    time_axis, memory_axis = figure.subplots(1, 2)
    colours = {}
    for r in records:
        colours.setdefault(r["kind"], f"C{len(colours)}")
    for kind, colour in colours.items():
        for phase, style in (("inference", "-"), ("training", "--")):
            for heads, marker in ((1, "o"), (8, "s")):
                rows = sorted((r for r in records if r["kind"] == kind and r["phase"] == phase and r["heads"] == heads
                               and r["batch"] == 1), key=lambda r: r["positions"])
                if not rows:
                    continue
                label = f"{kind} h{heads} {phase}"
                timed = [(r["positions"], r["time_ms"]) for r in rows if r["time_ms"] is not None]
                if timed:
                    time_axis.plot(*zip(*timed), style, marker=marker, color=colour, label=label)
                memory_axis.plot([r["positions"] for r in rows], [r["predicted_mb"] for r in rows], style, color=colour,
                                 label=label)
                measured = [(r["positions"], r["measured_mb"]) for r in rows if r["measured_mb"] is not None]
                if measured:
                    memory_axis.plot(*zip(*measured), marker, color=colour, linestyle="none")
    for axis, label in ((time_axis, "time (ms)"), (memory_axis, "peak memory (MB): model (lines), measured (marks)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("positions N")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    memory_axis.legend(fontsize=6, ncol=2)
    first = records[0]
    figure.suptitle(f"tam bench · segmentation · {first['device_name']} · torch {first['torch']}", fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


# -- precision ----------------------------------------------------------------------------------------------


def cell_verdict(r: dict) -> str:
    """``pass`` | ``fail`` | ``out of range`` (the true branch does not fit the format) | ``not run``."""
    if r["status"] != "ok":
        return "not run"
    if not r["representable"]:
        return "out of range"
    accurate = r["relative_error"] is not None and r["relative_error"] <= r["bound"]
    return "pass" if r["forward_finite"] and r["backward_finite"] and accurate else "fail"


def _cell_text(r: dict) -> str:
    verdict = cell_verdict(r)
    if verdict == "not run":
        return r["status"]
    if not r["forward_finite"]:
        text = "inf/nan"
    else:
        text = f"{r['relative_error']:.1e}"
    if r["forward_finite"] and not r["backward_finite"]:
        text += " bwd inf"
    return {"pass": text, "fail": f"**{text}** ✗", "out of range": f"{text} (a₆₄ > max)"}[verdict]


def precision_markdown(records: Sequence[dict]) -> str:
    """The matrix (one table per format and mode) and every failing cell with what overflowed."""
    lines = _header(records, "precision") + [
        "- Cell: relative error of the attention branch against float64, `max |a − a₆₄| / max |a₆₄|`; ✗ where the"
        " output or a gradient is not finite or the error passes the bound (bf16 3e-2, fp16 5e-3);"
        " *a₆₄ > max*: the true branch does not fit the format (no evaluation can be finite there).",
        f"- {records[0]['channels']} channels, {records[0]['heads']} head(s), batch 1, default init, BN γ = 1;"
        " input: post-ReLU activations of the given mean.",
        "",
    ]
    sides = sorted({(r["height"], r["width"]) for r in records}, key=lambda s: s[0] * s[1])
    magnitudes = sorted({r["magnitude"] for r in records})
    kinds = list(dict.fromkeys(r["kind"] for r in records))
    for dtype in dict.fromkeys(r["dtype"] for r in records):
        for mode in dict.fromkeys(r["mode"] for r in records):
            columns = [(side, m) for side in sides for m in magnitudes]
            lines += [f"## {dtype}, {mode}", "",
                      "| kind | " + " | ".join(f"{h}×{w} ·{m}" for (h, w), m in columns) + " |",
                      "|---|" + "---|" * len(columns)]
            for kind in kinds:
                cells = []
                for (h, w), m in columns:
                    r = next((r for r in records if r["kind"] == kind and r["dtype"] == dtype and r["mode"] == mode
                              and (r["height"], r["width"]) == (h, w) and r["magnitude"] == m), None)
                    cells.append("" if r is None else _cell_text(r))
                lines.append(f"| {kind} | " + " | ".join(cells) + " |")
            lines.append("")
    failing = [r for r in records if cell_verdict(r) == "fail"]
    lines += ["## Failing cells", ""]
    for r in failing:
        if r["overflow"]:
            why = f"overflows first in {r['overflow']}"
        elif not r["forward_finite"] or not r["backward_finite"]:
            why = "not finite"
        else:
            why = f"finite, error {r['relative_error']:.2g} > {r['bound']:g}"
        lines.append(f"- {r['kind']} {r['dtype']} {r['mode']} {r['height']}×{r['width']} mean {r['magnitude']}: {why}")
    if not failing:
        lines.append("None.")
    out_of_range = [r for r in records if cell_verdict(r) == "out of range"]
    if out_of_range:
        lines += ["", "## Out of the format's range", "",
                  "The float64 branch's largest value passes the format's largest: no evaluation in it can be finite.", ""]
        for r in out_of_range:
            what = f"overflows first in {r['overflow']}" if r["overflow"] else "finite"
            lines.append(f"- {r['kind']} {r['dtype']} {r['mode']} {r['height']}×{r['width']} mean {r['magnitude']}: "
                         f"max |a₆₄| {r['reference_max']:.3g} > {torch.finfo(DTYPES[r['dtype']]).max:.3g}; {what}")
    not_run = [r for r in records if r["status"] != "ok"]
    if not_run:
        lines += ["", "## Not run", ""]
        lines += [f"- {r['kind']} {r['dtype']} {r['mode']} {r['height']}×{r['width']} mean {r['magnitude']}: {r['error']}"
                  for r in not_run]
    return "\n".join(lines) + "\n"


def precision_png(records: Sequence[dict]) -> bytes:
    """Heat map: rows kind × format × mode, columns map × magnitude; colour log10(error ÷ bound), black where
    not finite, grey where not run, hatched-white where the true branch does not fit the format."""
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    sides = sorted({(r["height"], r["width"]) for r in records}, key=lambda s: s[0] * s[1])
    magnitudes = sorted({r["magnitude"] for r in records})
    columns = [(side, m) for side in sides for m in magnitudes]
    rows = list(dict.fromkeys((r["kind"], r["dtype"], r["mode"]) for r in records))
    values = np.full((len(rows), len(columns)), np.nan)
    special = np.zeros((len(rows), len(columns)))  # 1 not finite, 2 not run, 3 out of range
    for r in records:
        i = rows.index((r["kind"], r["dtype"], r["mode"]))
        j = columns.index(((r["height"], r["width"]), r["magnitude"]))
        verdict = cell_verdict(r)
        if verdict == "not run":
            special[i, j] = 2
        elif verdict == "out of range":
            special[i, j] = 3
        elif not (r["forward_finite"] and r["backward_finite"]) or not math.isfinite(r["relative_error"]):
            special[i, j] = 1
        else:
            values[i, j] = math.log10(max(r["relative_error"], 1e-12) / r["bound"])
    figure = Figure(figsize=(max(8, 0.45 * len(columns) + 3), 0.3 * len(rows) + 2), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(values, cmap="RdYlGn_r", vmin=-2, vmax=2, aspect="auto")
    overlay = np.ma.masked_equal(special, 0)
    axis.imshow(overlay, cmap=ListedColormap(["black", "lightgrey", "white"]), vmin=1, vmax=3, aspect="auto")
    axis.set_xticks(range(len(columns)), [f"{h}×{w}·{m}" for (h, w), m in columns], rotation=90, fontsize=6)
    axis.set_yticks(range(len(rows)), [" ".join(row) for row in rows], fontsize=6)
    figure.colorbar(image, label="log10(error ÷ bound); black: inf/NaN, grey: not run, white: true branch > max")
    first = records[0]
    figure.suptitle(f"tam bench · precision · {first['device_name']} · torch {first['torch']}", fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
