"""``analyze(model, images, ...)``: statistics, figures, ``analysis.json`` and ``report.md`` for one model."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from tam.analysis.figures import attention_figure, geometry_figure, head_mean_maps, keys_figure, transposed_figure
from tam.analysis.maps import (
    MAX_ELEMENTS,
    QUERY_BLOCK,
    attention_blocks,
    capture_inputs,
    gather_maps,
    has_spatial_map,
    key_grid,
    query_positions,
)
from tam.analysis.report import render_report
from tam.analysis.statistics import block_statistics
from tam.errors import UserError
from tam.files import write_atomic, write_text_atomic

ANALYSIS_JSON = "analysis.json"
REPORT_MD = "report.md"
GEOMETRY_PNG = "geometry.png"
KEYS_PNG = "keys.png"
QUERY_POINTS = ((0.5, 0.5), (0.2, 0.25), (0.75, 0.75))  # (row, column) as fractions of the grid


@torch.no_grad()
def analyze(
    model: nn.Module,
    images: Tensor,
    display: Tensor,
    out: str | Path,
    *,
    labels: Tensor | None = None,
    figure_images: Sequence[int] = (0, 1, 2, 3),
    points: Sequence[Sequence[float]] = QUERY_POINTS,
    query_block: int = QUERY_BLOCK,
    max_elements: int = MAX_ELEMENTS,
    about: dict | None = None,
) -> dict:
    """Analyse every attention block of ``model`` on ``images`` and write the results into ``out``.

    Writes ``maps_<block>.png`` (the chosen queries of ``figure_images`` over the input), for the kinds with
    ``d×d`` maps (TAM, xca, ea, linear) ``transposed_<block>.png``, ``geometry.png``, ``keys.png``, ``analysis.json`` and
    ``report.md``. Returns what ``analysis.json`` holds.

    Args:
        images: the model's input, normalised, ``[B, 3, H, W]``; the statistics use all of them.
        display: the same images in ``[0, 1]`` for drawing, ``[B, 3, H', W']``.
        labels: ``[B]``, to report the accuracy on these images.
        figure_images: which images the map figures show.
        points: query positions as ``(row, column)`` fractions of each block's grid.
        query_block, max_elements: map blocking (:func:`~tam.analysis.maps.map_blocks`).
        about: where the model and images came from (checkpoint, data), copied into the outputs.
    """
    blocks = attention_blocks(model)
    if not blocks:
        raise UserError("the model has no attention blocks to analyse (attention 'none' or no blocks placed)")
    out = Path(out)
    blocking = dict(query_block=query_block, max_elements=max_elements)
    logits, inputs = capture_inputs(model, images)
    stats = [block_statistics(name, block, inputs[name], **blocking) for name, block in blocks]

    shown = list(figure_images)
    files: dict[str, dict[str, str]] = {"maps": {}, "transposed": {}}
    for (name, block), measured in zip(blocks, stats):
        x, slug = inputs[name], name.replace(".", "-")
        spatial = tuple(x.shape[2:])
        if has_spatial_map(block):
            queries = query_positions(spatial, points)
            weights = gather_maps(block, x[shown], queries, **blocking)
            title = (f"{name}: {measured.kind}, {measured.normalization}, geometry {measured.geometry}, "
                     f"{measured.heads} heads, {'×'.join(map(str, spatial))} grid (mean over heads)")
            png = attention_figure(display[shown].cpu(), head_mean_maps(weights, key_grid(block, spatial)).cpu(),
                                   queries, spatial, title=title, signed=measured.normalization == "scale")
            files["maps"][name] = _write_png(out, f"maps_{slug}.png", png)
        if hasattr(block, "transposed_map"):  # TAM and the linear family (xca, ea, linear)
            m = block.transposed_map(x).mean(0).float().cpu()
            title = f"{name}: {measured.kind}'s d×d map per head (mean over {len(x)} images)"
            files["transposed"][name] = _write_png(out, f"transposed_{slug}.png", transposed_figure(m, title=title))

    cpu_stats = [s.cpu() for s in stats]
    label = (about or {}).get("label", type(model).__name__)
    geometry_png = geometry_figure(cpu_stats, title=f"{label}: geometry of attention")
    files["geometry"] = _write_png(out, GEOMETRY_PNG, geometry_png)
    if any(s.received is not None for s in cpu_stats):
        files["keys"] = _write_png(out, KEYS_PNG, keys_figure(cpu_stats, title=f"{label}: what each key receives"))

    top1 = None if labels is None else round(100 * (logits.argmax(1) == labels).double().mean().item(), 2)
    analysis = {
        "about": about or {},
        "images": len(images),
        "top1_on_images": top1,
        "query_points": [list(p) for p in points],
        "query_block": query_block,
        "figure_images": shown,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "device": str(images.device),
        "blocks": [s.summary() for s in stats],
        "figures": files,
    }
    write_text_atomic(out / ANALYSIS_JSON, json.dumps(analysis, indent=2) + "\n")
    write_text_atomic(out / REPORT_MD, render_report(analysis))
    return analysis


def _write_png(out: Path, name: str, png: bytes) -> str:
    write_atomic(out / name, lambda file: file.write(png))
    return name
