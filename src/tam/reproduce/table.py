"""The experiment's table, read back from its run folders: accuracy over seeds, cost relative to the backbone.

Every number in ``README.md`` comes from a ``results.json`` (accuracy, parameters) or a ``cost.json``
(training-step time, memory) under the experiment folder, and each row links the folders it came from.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Row:
    cell: str
    attention: str
    heads: int
    runs: list[Path]
    top1_error: list[float]
    top5_error: list[float]
    params: int
    images_per_s: list[float]
    cost: dict | None


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (``None`` for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def collect(cells: dict[str, Path]) -> list[Row]:
    """One row per cell (name -> its folder) that has at least one finished run folder, in the given order."""
    rows = []
    for cell, folder in cells.items():
        runs = sorted(p.parent for p in folder.glob("seed*/results.json"))
        if not runs:
            continue
        results = [json.loads((run / "results.json").read_text()) for run in runs]
        cost_path = folder / "cost.json"
        rows.append(Row(
            cell=cell,
            attention=results[0]["attention"],
            heads=results[0]["heads"],
            runs=runs,
            top1_error=[100 - r["final_top1"] for r in results],
            top5_error=[100 - r["final_top5"] for r in results],
            params=results[0]["params"],
            images_per_s=[r["train_images_per_s"] for r in results],
            cost=json.loads(cost_path.read_text()) if cost_path.is_file() else None,
        ))
    return rows


def _pm(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def _relative(row: Row, base: Row | None, field: str) -> str:
    if row.cost is None or base is None or base.cost is None:
        return "—"
    top, bottom = row.cost.get(field), base.cost.get(field)
    return "—" if not top or not bottom else f"{top / bottom:.2f}×"


def markdown(title: str, budget: str, rows: list[Row], out: Path) -> str:
    base = next((row for row in rows if row.attention == "none"), None)
    lines = [
        f"# {title}",
        "",
        f"Budget `{budget}`. Errors are final-epoch test errors in %, mean ± sample std over seeds; cost is one "
        "training step of the whole model measured right after training (`tam bench`'s network measurement), "
        "relative to the backbone without attention.",
        "",
        "| cell | top-1 error | top-5 error | seeds | params | step time | memory | images/s (training) | runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        links = ", ".join(f"[{run.name}]({Path(os.path.relpath(run, out)).as_posix()}/results.json)"
                          for run in row.runs)
        lines.append(
            f"| {row.cell} | {_pm(row.top1_error)} | {_pm(row.top5_error)} | {len(row.runs)} | "
            f"{row.params / 1e6:.3f}M | {_relative(row, base, 'time_ms')} | {_relative(row, base, 'memory_mb')} | "
            f"{mean_std(row.images_per_s)[0]:.0f} | {links} |"
        )
    lines += ["", "## The thesis's claims on this data", ""] + claims(rows)
    machine = next((row.cost for row in rows if row.cost), None)
    if machine:
        lines += ["", f"Costs measured on {machine.get('device_name')} with torch {machine.get('torch')} "
                      f"on {machine.get('date')}."]
    return "\n".join(lines) + "\n"


def claims(rows: list[Row]) -> list[str]:
    """TAM ≥ Non-local in accuracy at equal heads, and how much cheaper per step, stated from the numbers."""
    by_kind = {(row.attention, row.heads): row for row in rows}
    lines = []
    for (attention, heads), tam_row in sorted(by_kind.items()):
        nl_row = by_kind.get(("nl", heads))
        if attention != "tam" or nl_row is None:
            continue
        tam_err, nl_err = mean_std(tam_row.top1_error)[0], mean_std(nl_row.top1_error)[0]
        verdict = "holds" if tam_err <= nl_err else "does not hold"
        cost = ""
        if tam_row.cost and nl_row.cost and tam_row.cost.get("time_ms") and nl_row.cost.get("time_ms"):
            tam_ms, nl_ms = tam_row.cost["time_ms"], nl_row.cost["time_ms"]
            cost = (f"; one training step took {tam_ms:.1f} ms with TAM and {nl_ms:.1f} ms with Non-local "
                    f"(TAM {nl_ms / tam_ms:.2f}× as fast)")
        lines.append(f"- {heads} head(s): TAM ≥ Non-local in accuracy **{verdict}**: top-1 error "
                     f"{tam_err:.2f}% vs {nl_err:.2f}%{cost}.")
    return lines or ["- No TAM and Non-local cells with equal heads finished yet."]
