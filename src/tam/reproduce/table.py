"""The experiment's table, read back from its run folders: accuracy over seeds, each cell against Non-local
softmax at the same heads with a 95% interval (:mod:`tam.reproduce.comparison`), cost relative to the backbone.

Every number in ``README.md`` comes from a ``results.json`` (accuracy, parameters, test-set size), a
``config.yaml`` (attention options) or a ``cost.json`` (training-step time, memory) under the experiment folder
(or a folder it reuses), and each row links the run folders it came from.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tam.analysis.intervals import Difference, mean_std
from tam.reproduce.comparison import LEVEL, Resolution, compare, reading, resolution, verdict
from tam.train.config import load_yaml


@dataclass
class Row:
    cell: str
    attention: str
    heads: int
    options: dict
    runs: list[Path]
    top1_error: list[float]
    top5_error: list[float]
    test_images: int | None
    params: int
    images_per_s: list[float]
    cost: dict | None

    @property
    def reference(self) -> str:
        """The cell this one is compared with: Non-local softmax (its defaults) at the same heads."""
        return f"nl-h{self.heads}"

    @property
    def sibling(self) -> str:
        """The same kind with its default options (the cell a geometry or normalization option departs from)."""
        return f"{self.attention}-h{self.heads}"


def collect(cells: dict[str, Path]) -> list[Row]:
    """One row per cell (name -> its folder) that has at least one finished run folder, in the given order."""
    rows = []
    for cell, folder in cells.items():
        runs = sorted(p.parent for p in folder.glob("seed*/results.json"))
        if not runs:
            continue
        results = [json.loads((run / "results.json").read_text()) for run in runs]
        config = load_yaml(runs[0] / "config.yaml") if (runs[0] / "config.yaml").is_file() else {}
        cost_path = folder / "cost.json"
        rows.append(Row(
            cell=cell,
            attention=results[0]["attention"],
            heads=results[0]["heads"],
            options=config.get("attention_options") or {},
            runs=runs,
            top1_error=[100 - r["final_top1"] for r in results],
            top5_error=[100 - r["final_top5"] for r in results],
            # Runs from before final_test_images was recorded tested on their limit_test subset every epoch.
            test_images=results[0].get("final_test_images") or config.get("limit_test"),
            params=results[0]["params"],
            images_per_s=[r["train_images_per_s"] for r in results],
            cost=json.loads(cost_path.read_text()) if cost_path.is_file() else None,
        ))
    return rows


def comparison(row: Row, other: Row) -> Difference:
    """``row``'s top-1 error minus ``other``'s, with its 95% interval."""
    return compare(row.top1_error, other.top1_error, row.test_images, other.test_images)


def grid_resolution(rows: list[Row]) -> Resolution | None:
    """The smallest difference the grid resolves, from its pooled seed spread and its test set."""
    sizes = [row.test_images for row in rows if row.test_images]
    return resolution([row.top1_error for row in rows], min(sizes) if sizes else None)


def _pm(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def _interval(difference: Difference) -> str:
    if difference.low is None:
        return f"{difference.difference:+.2f} (one seed: no interval)"
    return f"{difference.difference:+.2f} [{difference.low:+.2f}, {difference.high:+.2f}]"


def step_ratio(row: Row, base: Row) -> tuple[float, float | None, float | None] | None:
    """The cell's training-step time ÷ the backbone's: the ratio timed interleaved with the backbone, with its
    quartiles, where the cost step paired them; else the ratio of the separate medians (no quartiles)."""
    if row.cost is None or base.cost is None:
        return None
    if row is base:
        return 1.0, None, None
    if row.cost.get("paired_ratio"):
        return row.cost["paired_ratio"], row.cost["paired_ratio_q1"], row.cost["paired_ratio_q3"]
    top, bottom = row.cost.get("time_ms"), base.cost.get("time_ms")
    return (top / bottom, None, None) if top and bottom else None


def _relative_time(row: Row, base: Row | None) -> str:
    found = None if base is None else step_ratio(row, base)
    if found is None:
        return "—"
    ratio, q1, q3 = found
    loaded = row.cost.get("under_load") or base.cost.get("under_load")
    return (f"{ratio:.2f}×" + ("" if q1 is None else f" [{q1:.2f}–{q3:.2f}]")
            + (" *under load*" if loaded else ""))


def _relative(row: Row, base: Row | None, field: str) -> str:
    if row.cost is None or base is None or base.cost is None:
        return "—"
    top, bottom = row.cost.get(field), base.cost.get(field)
    return "—" if not top or not bottom else f"{top / bottom:.2f}×"


def _speed(tam: dict, nl: dict) -> str:
    """TAM's training step against Non-local's, read like every timing claim (:mod:`tam.bench.load`): faster or
    slower only when the quartile range of Non-local ÷ TAM (q1/q3 to q3/q1) lies wholly on one side of 1."""
    tam_ms, nl_ms = tam["time_ms"], nl["time_ms"]
    text = f"; one training step took {tam_ms:.1f} ms with TAM and {nl_ms:.1f} ms with Non-local (Non-local ÷ TAM "
    quartiles = (tam.get("time_q1_ms"), tam.get("time_q3_ms"), nl.get("time_q1_ms"), nl.get("time_q3_ms"))
    if None in quartiles:
        text += f"{nl_ms / tam_ms:.2f}, no quartiles: speed not resolved)"
    else:
        low, high = quartiles[2] / quartiles[1], quartiles[3] / quartiles[0]
        reading = "TAM faster" if low > 1 else "TAM slower" if high < 1 else "speed difference not resolved"
        text += f"{nl_ms / tam_ms:.2f}, quartile range {low:.2f}–{high:.2f}: {reading})"
    return text + (", measured under load" if tam.get("under_load") or nl.get("under_load") else "")


def costed(rows: list[Row]) -> tuple[Row | None, list[Row]]:
    """The backbone row without attention and every row whose step time can be set against it (none of either
    until the grid's cost step has run)."""
    base = next((row for row in rows if row.attention == "none" and row.cost and row.cost.get("time_ms")), None)
    return base, [row for row in rows if base and row.cost and row.cost.get("time_ms")]


def markdown(title: str, budget: str, rows: list[Row], out: Path, baseline: list[Row] | None = None) -> str:
    """The README of an experiment folder; ``baseline`` (rows of an earlier budget) adds its resolution."""
    base = next((row for row in rows if row.attention == "none"), None)
    by_name = {row.cell: row for row in rows}
    lines = [
        f"# {title}",
        "",
        f"Budget `{budget}`. Errors are the final model's test errors in %, mean ± sample std over seeds, on the "
        "number of test images given. Δ is the cell's top-1 error minus Non-local softmax's at the same heads, with "
        f"its {LEVEL:.0%} interval: Welch's t interval over seeds, widened by both cells' binomial test-set error "
        "(see `tam.reproduce.comparison`); the reading comes from the interval alone. Cost is one training step of "
        "the whole model measured after training (`tam bench`'s network measurement), relative to the backbone "
        "without attention: step time as the median ratio [quartiles] of the cell's steps to the backbone's, "
        "timed interleaved (where the cost step paired them). Plots: [accuracy.png](accuracy.png)"
        + (", [accuracy_cost.png](accuracy_cost.png)." if costed(rows)[1] else
           "; `accuracy_cost.png` follows once the costs are measured (after the grid's training)."),
        "",
        "| cell | top-1 error | Δ vs Non-local, same heads [95%] | reading | top-5 error | seeds | test images "
        "| params | step time | memory | images/s (training) | runs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        links = ", ".join(f"[{run.name}]({Path(os.path.relpath(run, out)).as_posix()}/results.json)"
                          for run in row.runs)
        reference = by_name.get(row.reference)
        if reference is None or reference is row:
            delta, read = "—", "—"
        else:
            difference = comparison(row, reference)
            delta, read = _interval(difference), reading(difference)
        lines.append(
            f"| {row.cell} | {_pm(row.top1_error)} | {delta} | {read} | {_pm(row.top5_error)} | {len(row.runs)} | "
            f"{row.test_images or '—'} | {row.params / 1e6:.3f}M | {_relative_time(row, base)} | "
            f"{_relative(row, base, 'memory_mb')} | {mean_std(row.images_per_s)[0]:.0f} | {links} |"
        )
    lines += ["", "## What this budget shows", ""] + claims(rows) + [""] + _resolution_lines(rows, baseline)
    kept = sorted({path.relative_to(run).as_posix() for row in rows for run in row.runs
                   for path in run.glob("weights/epoch*.pt")})
    if kept:
        lines += ["", f"Each run folder keeps `config.yaml` (its whole training config) and its final weights "
                      f"(`{'`, `'.join(kept)}`): a checkpoint file holding `epoch`, `config` (that config as a dict) "
                      "and `model` (the state dict), read by `tam.train.checkpoint.load_checkpoint`; "
                      "`tam.train.model.model_from_config` rebuilds the model from its config, and "
                      "`tam analyze --grid` reads them all."]
    machine = next((row.cost for row in rows if row.cost), None)
    if machine:
        lines += ["", f"Costs measured on {machine.get('device_name')} with torch {machine.get('torch')}, "
                      f"{machine.get('threads')} thread(s), on {machine.get('date')}."]
        if any(row.cost and row.cost.get("under_load") for row in rows):
            lines += ["", "Step times marked *under load* were measured with more torch threads than the cores other "
                          "work left free, or a load above the cores: they can be several times this machine's own "
                          "cost, and ratios between them are not to be trusted."]
    return "\n".join(lines) + "\n"


def _resolution_lines(rows: list[Row], baseline: list[Row] | None) -> list[str]:
    def sentence(found: Resolution) -> str:
        test = f"{found.test_images:,} test images" if found.test_images else "an unknown number of test images"
        return (f"**{found.smallest_difference:.2f} points** of top-1 error (pooled seed std {found.std:.2f} over "
                f"{found.cells} cells, {found.seeds} seeds per cell, {test}, mean error {found.error:.1f}%)")

    found = grid_resolution(rows)
    if found is None:
        return ["- The smallest resolvable difference needs cells with at least two seeds."]
    lines = [f"- The smallest difference this budget resolves: {sentence(found)}; a smaller true difference "
             "cannot give an interval that excludes zero."]
    earlier = grid_resolution(baseline) if baseline else None
    if earlier is not None:
        lines.append(f"- The earlier budget, from its run folders, resolved {sentence(earlier)}: this one's is "
                     f"{found.smallest_difference / earlier.smallest_difference:.2f}× that.")
    return lines


def claims(rows: list[Row]) -> list[str]:
    """The thesis's accuracy claim (TAM ≥ Non-local at equal heads) and each option's effect within its kind,
    each read from its interval: holds, fails, or not resolved at this budget."""
    by_name = {row.cell: row for row in rows}
    lines = []
    for row in rows:
        nl_row = by_name.get(row.reference)
        if row.attention != "tam" or row.options or nl_row is None:
            continue
        difference = comparison(row, nl_row)
        cost = ""
        if row.cost and nl_row.cost and row.cost.get("time_ms") and nl_row.cost.get("time_ms"):
            cost = _speed(row.cost, nl_row.cost)
        lines.append(f"- {row.heads} head(s): TAM ≥ Non-local in accuracy **{verdict(difference)}**: TAM's top-1 "
                     f"error minus Non-local's is {_interval(difference)} points{cost}.")
    for row in rows:
        sibling = by_name.get(row.sibling)
        if not row.options or sibling is None:
            continue
        difference = comparison(row, sibling)
        options = ", ".join(f"{key}={value}" for key, value in row.options.items())
        lines.append(f"- {row.attention} with {options} against its defaults ({sibling.cell}): top-1 error "
                     f"{_interval(difference)} points, **{reading(difference)}**.")
    return lines or ["- No TAM and Non-local cells with equal heads finished yet."]
