"""``README.md`` of ``tam analyze --grid`` and ``--trajectory``: the numbers of ``geometry.json``, each row
linked to the run folders it came from, and the thesis's comparison stated from its interval."""

from __future__ import annotations

import os
from pathlib import Path

from tam.analysis.report import LINEAR_SPREAD, READING

NAMES = {"magnitude_correlation": "ρ(\\|k\\|)", "direction_correlation": "ρ(cos)"}
FACTORS = ("*ρ(\\|k\\|, cos) of keys* is Spearman's ρ between the two factors themselves over a block's keys: near "
           "±1 they rank the keys alike, and a weight that follows one seems to follow the other too.")


def _pm(entry: dict | None, signed: bool = True) -> str:
    if entry is None:
        return "–"
    mean = f"{entry['mean']:+.2f}" if signed else f"{entry['mean']:.2f}"
    return mean if entry["std"] is None else f"{mean} ± {entry['std']:.2f}"


def _links(cell: dict, out: Path) -> str:
    return ", ".join(f"[s{seed}]({os.path.relpath(run, out)})" for seed, run in zip(cell["seeds"], cell["runs"]))


def _statistics(block: dict) -> str:
    """ρ(|k|) | ρ(cos) | ρ(|k|, cos) | row entropy | logit spread, as table cells."""
    signed = [_pm(block.get(key)) for key in ("magnitude_correlation", "direction_correlation", "factor_correlation")]
    return " | ".join(signed + [_pm(block.get(key), False) for key in ("row_entropy", "logit_spread")])


def _trained(cell: dict) -> str:
    """Epochs × training images (0: the whole split), e.g. ``5 × 20000``."""
    return (f"{'/'.join(map(str, cell['epoch']))} ep × "
            f"{'/'.join(str(n) if n else 'all' for n in cell['train_images'])}")


def _queries(cell: dict, block: dict) -> str:
    images = "/".join(map(str, cell["images"]))
    return f"{images} × {block['queries_per_image']}"


def _interval(row: dict) -> str:
    if row["low"] is None:
        return f"{row['difference']:+.2f} (no interval: < 2 seeds)"
    return f"{row['difference']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]"


def _verdicts(summary: dict) -> list[str]:
    rows = [r for r in summary["comparisons"] if r["statistic"] == "magnitude_correlation"]
    if not rows:
        return ["- **Not yet**: no Non-local softmax and TAM scale cells at equal heads have finished."]
    lines = []
    for a in sorted({(r["a"], r["b"]) for r in rows}):
        pair = [r for r in rows if (r["a"], r["b"]) == a]
        verdicts = {r["verdict"] for r in pair}
        seeds = min(min(r["seeds"]) for r in pair)
        if verdicts == {"> 0"}:
            reading = ("**holds**: ρ(|k|) is higher for softmax Non-local than for TAM (its received weight rises more, "
                       "or falls less, with the key norm)")
        elif verdicts == {"< 0"}:
            reading = ("**fails**: ρ(|k|) is lower for softmax Non-local than for TAM (its received weight rises less, "
                       "or falls more, with the key norm)")
        elif seeds < 2:
            reading = "is **not yet** measured: fewer than two seeds on a side"
        else:
            reading = "is **not resolved at this budget**: not every block's interval lies on one side of 0"
        per_block = "; ".join(f"`{r['block']}` {_interval(r)}" for r in pair)
        lines.append(f"- `{a[0]}` against `{a[1]}` (≥ {seeds} seeds a side): the thesis's claim {reading} — "
                     f"Non-local − TAM, 95% Welch interval over seeds: {per_block}.{_seeds_needed(pair)}")
    return lines


def _seeds_needed(pair: list[dict]) -> str:
    """For the blocks not resolved: how many seeds a side would resolve the difference these seeds show."""
    open_rows = [r for r in pair if r["verdict"] == "not resolved" and r["low"] is not None]
    if not open_rows:
        return ""
    needed = "; ".join(f"`{r['block']}` " + (f"{r['seeds_to_resolve']}" if r.get("seeds_to_resolve") else "more than 100")
                       for r in open_rows)
    return (f" Were the differences and the spreads these seeds show the true ones, an interval would exclude 0 "
            f"with this many seeds a side: {needed} (a planning estimate; all three are uncertain).")


def _spread_lines(summary: dict) -> list[str]:
    lines = []
    for cell in summary["cells"]:
        spreads = [(b["name"], b["logit_spread"]) for b in cell["blocks"] if "logit_spread" in b]
        if not spreads or cell["blocks"][0]["kind"] != "nl" or cell["blocks"][0]["geometry"] != "full":
            continue
        top = max(s["mean"] for _, s in spreads)
        regime = (f"below {LINEAR_SPREAD} in every block: `exp` is close to linear over a row, so the softmax "
                  "weighs keys much as the `scale` form does" if top < LINEAR_SPREAD else
                  f"at or above {LINEAR_SPREAD} in some block: the regime where the softmax can single out keys")
        lines.append(f"- `{cell['cell']}`: logit spread " + ", ".join(f"`{n}` {_pm(s, False)}" for n, s in spreads)
                     + f" — {regime}.")
    return lines


def render_grid(summary: dict, out: Path, figure: str) -> str:
    """The Markdown report of :func:`tam.analysis.grid.analyze_grid`'s summary."""
    lines = [
        "# Geometry of attention over seeds",
        "",
        f"Final weights of every finished run with attention in {', '.join(f'`{g}`' for g in summary['grids'])}; "
        f"each run measured on {summary['images']} class-balanced test images of the data its config names, at "
        f"every query position (images × queries per image below); torch {summary['torch']} on "
        f"{summary['device']} ({summary['machine']}), {summary['date']}. Each value is the mean over images and "
        "heads for one seed, then mean ± sample std over seeds; `s0, s1, …` link each seed's run folder (its "
        "`config.yaml` says epochs and training images; `records/` holds each weights file's numbers with its "
        "sha256).",
        "",
        READING,
        "",
        FACTORS,
        "",
        "| cell | trained | block | grid | seeds | images × queries | ρ(\\|k\\|) | ρ(cos) | ρ(\\|k\\|, cos) of keys "
        "| row entropy | logit spread | runs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in summary["cells"]:
        for block in cell["blocks"]:
            lines.append(
                f"| `{cell['cell']}` | {_trained(cell)} | `{block['name']}` | {'×'.join(map(str, block['spatial']))} | "
                f"{len(cell['seeds'])} | {_queries(cell, block)} | {_statistics(block)} | {_links(cell, out)} |")
    lines += ["", "## The thesis's claim: softmax weighs keys by magnitude, the plain scale by direction", ""]
    lines += _verdicts(summary)
    if summary["comparisons"]:
        lines += ["", "| Non-local cell | TAM cell | block | statistic | Non-local − TAM [95% Welch] | df | seeds |",
                  "|---|---|---|---|---|---|---|"]
        for row in summary["comparisons"]:
            lines.append(f"| `{row['a']}` | `{row['b']}` | `{row['block']}` | {NAMES[row['statistic']]} | "
                         f"{_interval(row)} | {row['df'] if row['df'] is not None else '–'} | "
                         f"{row['seeds'][0]}, {row['seeds'][1]} |")
    spreads = _spread_lines(summary)
    if spreads:
        lines += ["", "Is the softmax past its near-linear regime?", "", *spreads]
    lines += ["", f"![ρ(|k|) against ρ(cos) per cell and block]({figure})", ""]
    return "\n".join(lines)


def render_trajectory(summary: dict, out: Path, figure: str) -> str:
    """The Markdown report of :func:`tam.analysis.grid.analyze_trajectory`'s summary."""
    cells = summary["cells"]
    lines = [
        f"# Geometry of attention over training: `{summary['run']}`",
        "",
        f"The weights the run kept after each epoch (`--keep-weights`; epoch 0 is the initialisation), each "
        f"measured on {summary['images']} class-balanced test images at every query position; torch "
        f"{summary['torch']} on {summary['device']}, {summary['date']}. Run folder: "
        f"[{Path(summary['run']).name}]({os.path.relpath(summary['run'], out)}); training: {cells[0]['trained']}.",
        "",
        READING,
        "",
        FACTORS,
        "",
        "| epoch | test top-1 (logged) | block | grid | images × queries | ρ(\\|k\\|) | ρ(cos) | ρ(\\|k\\|, cos) of keys "
        "| row entropy | logit spread |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        logged = cell["test_top1_logged"][0]
        for block in cell["blocks"]:
            lines.append(f"| {cell['epoch'][0]} | {'–' if logged is None else f'{logged:.2f}%'} | `{block['name']}` | "
                         f"{'×'.join(map(str, block['spatial']))} | {_queries(cell, block)} | {_statistics(block)} |")
    lines += ["", *growth_lines(cells), "", f"![geometry over training]({figure})", ""]
    return "\n".join(lines)


def growth_lines(cells: list[dict]) -> list[str]:
    """How each block's softmax logit spread grew between the first and the last kept epoch, and, at that
    average rate, how many epochs it would take to reach :data:`LINEAR_SPREAD` (a straight-line extrapolation)."""
    first, last = cells[0], cells[-1]
    span = last["epoch"][0] - first["epoch"][0]
    lines = []
    for index, (start, end) in enumerate(zip(first["blocks"], last["blocks"])):
        if "logit_spread" not in start or span <= 0:
            continue
        a, b = start["logit_spread"]["mean"], end["logit_spread"]["mean"]
        rate = (b - a) / span
        if b >= LINEAR_SPREAD:
            reach = f"past {LINEAR_SPREAD} by epoch {last['epoch'][0]}"
        elif rate <= 0:
            reach = f"not growing: it would not reach {LINEAR_SPREAD} at this rate"
        else:
            reach = (f"at that rate {LINEAR_SPREAD} would take about {(LINEAR_SPREAD - a) / rate:.0f} epochs from "
                     f"epoch {first['epoch'][0]} (a straight line through two points of a decaying-lr schedule: "
                     "an estimate, not a measurement)")
        peak, at = max((cell["blocks"][index]["logit_spread"]["mean"], cell["epoch"][0]) for cell in cells)
        lines.append(f"- `{start['name']}`: logit spread {a:.3f} at epoch {first['epoch'][0]} → {b:.3f} at epoch "
                     f"{last['epoch'][0]} ({rate:+.4f} per epoch; largest {peak:.3f}, at epoch {at}); {reach}.")
    return lines
