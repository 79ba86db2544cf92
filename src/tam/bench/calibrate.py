"""`tam bench --suite dispatch`: time every exact form of the layers that have several, and fit the rule's
constant on the current device.

The rule of :mod:`tam.layers.dispatch` runs the form of least ``MACs + write_cost × elements``. For each
shape of a grid, the forms of a layer (same weights, same input) are timed alternately, training step by
training step; a shape whose forms differ by at least :data:`TIE` tells which is faster there. A value of
``write_cost`` ranks a shape right when the rule, with it, picks the faster form. The fit is the range of
values that rank the most shapes right (the rule changes its pick only at one value per shape, so the
candidates between those values are all there is to try), and the rule as shipped is checked against it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from tam.amp import AMP_DTYPES, check_amp
from tam.bench.measure import PairedRatio, Timing, time_interleaved
from tam.bench.workload import Workload
from tam.files import write_text_atomic
from tam.layers.dispatch import FormCost, FormDispatch, write_cost

TIE = 0.05  # forms within 5% of each other count as a tie: no evidence for either
SUITE = "dispatch"


@dataclass(frozen=True)
class Shape:
    """One point of the grid: a block of ``kind`` on ``[batch, channels, side, side]`` with ``heads`` heads."""

    kind: str
    channels: int
    side: int
    heads: int
    batch: int


def dispatch_kinds() -> tuple[str, ...]:
    """The registered kinds whose choice of form the write cost decides: those with a transposed order and a
    Gram form (:class:`~tam.layers.transposed.GramForms`). Non-local's two forms (its map, the fused kernel)
    do the same MACs, so the rule picks the one streaming fewer elements at any write cost."""
    from tam.layers.registry import attention_kind, attention_kinds
    from tam.layers.transposed import GramForms

    return tuple(name for name in attention_kinds(benchmark=True) if issubclass(attention_kind(name).layer, GramForms))


def dispatch_grid(quick: bool = False, kinds: Sequence[str] | None = None) -> list[Shape]:
    """The shapes timed: 64/128/256 channels × 8²/16²/32²/56² × 1/8/16 heads, batch 8 (``quick``: 64/256
    channels × 8²/32² × 1/16 heads, batch 4), for each kind with several forms (default: all of them).

    Example:
        >>> len(dispatch_grid(kinds=["tam"])), dispatch_grid(quick=True)[0]
        (36, Shape(kind='tam', channels=64, side=8, heads=1, batch=4))
    """
    channels, sides, heads, batch = ((64, 256), (8, 32), (1, 16), 4) if quick else (
        (64, 128, 256), (8, 16, 32, 56), (1, 8, 16), 8)
    chosen = dispatch_kinds() if kinds is None else tuple(kinds)
    return [Shape(kind, c, s, h, batch) for kind in chosen for c in channels for s in sides for h in heads]


def _layer(shape: Shape, impl: str) -> FormDispatch:
    from tam.layers import create_attention

    torch.manual_seed(0)  # every form of one shape gets the same weights
    return create_attention(shape.kind, shape.channels, heads=shape.heads, impl=impl)


def time_forms(
    shape: Shape,
    device: torch.device | str,
    *,
    budget_s: float,
    min_reps: int,
    max_reps: int,
    channels_last: bool = True,
    amp: str = "none",
) -> dict:
    """Time the training step of every form of ``shape``'s layer alternately; one record.

    Returns:
        the fields of ``shape``, ``device``, ``amp``, ``channels_last``; per form ``<form>_ms`` (median),
        ``<form>_macs`` and ``<form>_elements`` (its :class:`~tam.layers.dispatch.FormCost`); ``ratio``,
        ``ratio_q1``, ``ratio_q3``, ``reps``: the paired ratio of the second form's time to the first's;
        ``faster`` (the faster form, ``None`` within :data:`TIE`), ``rule`` (the form the shipped rule
        picks on this device in this dtype) and ``forms``.
    """
    device = torch.device(device)
    check_amp(amp)
    layers = {}
    for form in _layer(shape, "auto").forms:
        layers[form] = _layer(shape, form).to(device).train()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(shape.batch, shape.channels, shape.side, shape.side, device=device)
    x = x.contiguous(memory_format=memory_format).requires_grad_()
    grad = torch.randn_like(x, memory_format=memory_format)
    workloads = [Workload(layer, (x,), grad_output=grad, amp=amp) for layer in layers.values()]
    samples = time_interleaved([w.step for w in workloads], device, budget_s=budget_s, min_reps=min_reps,
                               max_reps=max_reps)
    forms = list(layers)
    first, second = forms[:2]
    ratio = PairedRatio.from_samples(samples[1], samples[0])
    spatial = (shape.side, shape.side)
    costs = layers[first].form_costs(spatial)
    faster = None if abs(ratio.median - 1) < TIE else (second if ratio.median < 1 else first)
    record = {**dataclasses.asdict(shape), "suite": SUITE, "device": device.type, "amp": amp,
              "channels_last": channels_last, "forms": forms}
    for form, sample in zip(forms, samples):
        record[f"{form}_ms"] = Timing.from_samples(sample).median_ms
        record[f"{form}_macs"], record[f"{form}_elements"] = costs[form]
    rule = _layer(shape, "auto").choose_form(spatial, device, AMP_DTYPES[amp])
    record.update(ratio=ratio.median, ratio_q1=ratio.q1, ratio_q3=ratio.q3, reps=ratio.reps, faster=faster,
                  rule=rule.form)
    return record


@dataclass(frozen=True)
class Fit:
    """The write costs that rank the most shapes as measured, and how the shipped value does.

    ``low``/``high``: the range of best values (``high`` is ``inf`` when every larger value ranks as well);
    ``best``: the value proposed (the geometric middle of the range, or twice ``low`` when it is unbounded);
    ``right``/``decided``: shapes the best values rank right / shapes with a faster form; ``shipped``: the
    rule's value for the device and dtype, ``shipped_source`` where it comes from, ``shipped_right`` the
    shapes it ranks right.
    """

    low: float
    high: float
    best: float
    right: int
    decided: int
    shipped: float
    shipped_source: str
    shipped_right: int

    @property
    def agrees(self) -> bool:
        """The shipped value ranks as many shapes right as the best does."""
        return self.shipped_right == self.right


def _costs(record: dict) -> tuple[FormCost, FormCost]:
    first, second = record["forms"][:2]
    return (FormCost(record[f"{first}_macs"], record[f"{first}_elements"]),
            FormCost(record[f"{second}_macs"], record[f"{second}_elements"]))


def _ranked_right(records: Sequence[dict], value: float) -> int:
    right = 0
    for record in records:
        first, second = _costs(record)
        picked = record["forms"][1] if second.at(value) < first.at(value) else record["forms"][0]
        right += picked == record["faster"]
    return right


def fit_write_cost(records: Sequence[dict]) -> Fit:
    """Fit the rule's constant to the records of :func:`time_forms` (one device, one dtype).

    Example:
        >>> rows = [dict(forms=["transposed", "gram"], transposed_macs=100, transposed_elements=4,
        ...              gram_macs=300, gram_elements=2, faster=f, device="cpu", amp="none")
        ...         for f in ("gram",)]  # gram faster: an element costs more than (300-100)/(4-2) = 100 MACs
        >>> fit = fit_write_cost(rows)
        >>> fit.low, fit.high, fit.right, fit.shipped, fit.agrees
        (100.0, inf, 1, 64.0, False)
    """
    decided = [r for r in records if r["faster"] is not None]
    breaks = set()
    for record in decided:
        first, second = _costs(record)
        if first.elements != second.elements:
            value = (second.macs - first.macs) / (first.elements - second.elements)
            if value > 0:
                breaks.add(value)
    edges = [0.0, *sorted(breaks), math.inf]
    intervals = list(zip(edges, edges[1:]))

    def probe(low: float, high: float) -> float:
        return low * 2 if math.isinf(high) else (low + high) / 2 if low == 0 else math.sqrt(low * high)

    scores = [_ranked_right(decided, probe(low, high)) for low, high in intervals]
    top = max(scores, default=0)
    best = [interval for interval, score in zip(intervals, scores) if score == top]
    low, high = best[0][0], best[0][1]
    for next_low, next_high in best[1:]:  # adjacent best intervals join into one range
        if next_low == high:
            high = next_high
    first = records[0] if records else {"device": "cpu", "amp": "none"}
    shipped, source = write_cost(first["device"], AMP_DTYPES[first["amp"]])
    return Fit(low, high, probe(low, high), top, len(decided), shipped, source, _ranked_right(decided, shipped))


def run_dispatch(
    shapes: Sequence[Shape],
    device: torch.device | str,
    *,
    on_record: Callable[[list[dict]], object] | None = None,
    progress: bool = True,
    **options,
) -> list[dict]:
    """:func:`time_forms` (with ``options``) for every shape, in order, with a progress bar, each record with
    :func:`~tam.bench.runner.environment`; ``on_record(records)`` after each."""
    from tqdm import tqdm

    from tam.bench.runner import environment

    records: list[dict] = []
    for shape in tqdm(shapes, desc="tam bench dispatch", unit="shape", disable=not progress, dynamic_ncols=True):
        records.append({**time_forms(shape, device, **options), **environment(device)})
        if on_record is not None:
            on_record(records)
    return records


def summary_lines(records: Sequence[dict]) -> list[str]:
    """What the calibration found, per kind: the fitted range, the proposed value, the shipped rule's score."""
    lines = []
    for kind in dict.fromkeys(r["kind"] for r in records):
        fit = fit_write_cost([r for r in records if r["kind"] == kind])
        first = next(r for r in records if r["kind"] == kind)
        where = f"{first['device']}" + ("" if first["amp"] == "none" else f" under {first['amp']} autocast")
        high = "∞" if math.isinf(fit.high) else f"{fit.high:.3g}"
        lines.append(
            f"{kind} on {where}: write cost {fit.low:.3g}–{high} ranks {fit.right} of {fit.decided} shapes "
            f"as measured (proposed {fit.best:.3g}); the shipped {fit.shipped:g} ({fit.shipped_source}) ranks "
            f"{fit.shipped_right}: " + ("agrees" if fit.agrees else "disagrees")
        )
    return lines


def markdown(records: Sequence[dict]) -> str:
    """The calibration report: where and how it was measured, the fit, one row per shape."""
    if not records:
        return "# tam bench: dispatch\n\nNo shapes were measured.\n"
    first = records[0]
    lines = [
        "# tam bench: dispatch",
        "",
        f"- Machine: {first['device_name']} (`{first['device']}`), torch threads: {first['threads']}, "
        f"torch {first['torch']}, {first['date']} (UTC)",
        "- Each shape: the training step (forward, backward of a fixed dense gradient) of every form of one"
        " layer, same weights and input" + (", `channels_last`" if first["channels_last"] else "")
        + ("" if first["amp"] == "none" else f", under {first['amp']} autocast")
        + ", timed alternately; *ratio* is the median [quartiles] of the per-repetition time ratios. Forms"
        f" within {TIE:.0%} are a tie and rank nothing.",
        "- Rule: the form of least `MACs + write_cost × elements` (`tam.layers.dispatch`).",
        "",
        *(f"- {line}" for line in summary_lines(records)),
        "",
        "| kind | channels | side | heads | batch | forms | ms | ratio [IQR] | faster | rule |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        forms = r["forms"]
        ms = " / ".join(f"{r[f'{form}_ms']:.3g}" for form in forms)
        lines.append(
            f"| {r['kind']} | {r['channels']} | {r['side']}² | {r['heads']} | {r['batch']} | {' / '.join(forms)} "
            f"| {ms} | {r['ratio']:.2f} [{r['ratio_q1']:.2f}–{r['ratio_q3']:.2f}] | {r['faster'] or 'tie'} "
            f"| {r['rule']} |"
        )
    return "\n".join(lines) + "\n"


def write_dispatch(records: Sequence[dict], out_dir: str | Path) -> list[Path]:
    """Write ``dispatch.json`` (the records) and ``dispatch.md`` (:func:`markdown`) into ``out_dir``."""
    out = Path(out_dir)
    return [
        write_text_atomic(out / "dispatch.json", json.dumps(list(records), indent=1)),
        write_text_atomic(out / "dispatch.md", markdown(records)),
    ]
