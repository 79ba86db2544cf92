"""``tam analyze --grid`` and ``--trajectory``: the geometry of attention over many weights files, written to
one folder: ``geometry.json`` (every number, each with the run folder and weights file it came from),
``README.md`` (tables and the thesis's comparison), figures, and one record per weights file under
``records/``. A record is reused while its weights file (sha256), images, data and the statistics measured are
unchanged, so a rerun over a growing grid measures only what finished since.
"""

from __future__ import annotations

import datetime
import json
import platform
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from tam.analysis.figures import seeds_figure, trajectory_figure
from tam.analysis.runs import Weights, grid_weights, kept_weights
from tam.analysis.seeds import STATISTICS, aggregate, compare, measure, sha256, thesis_pairs
from tam.analysis.seeds_report import render_grid, render_trajectory
from tam.errors import UserError
from tam.files import write_atomic, write_text_atomic

GEOMETRY_JSON = "geometry.json"
README_MD = "README.md"
SEEDS_PNG = "seeds.png"
TRAJECTORY_PNG = "trajectory.png"
RECORDS_DIR = "records"


def test_images(dataset, count: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """``count`` class-balanced test images of ``dataset``, normalised, on ``device``, with their labels.

    The same images for every run that names the same data (:func:`tam.train.subset.balanced_subset`).
    """
    from tam.data import DeviceLoader
    from tam.train.subset import balanced_subset

    pick = balanced_subset(dataset.test_labels, count)
    loader = DeviceLoader(dataset.test_images[pick], dataset.test_labels[pick], batch_size=len(pick), train=False,
                          augment=dataset.augment, mean=dataset.mean, std=dataset.std, device=device)
    return next(iter(loader))


def _record_path(out: Path, weights: Weights) -> Path:
    return out / RECORDS_DIR / weights.cell.replace(" ", "") / f"seed{weights.seed}-epoch{weights.epoch}.json"


def collect_records(found: list[Weights], out: Path, *, data: str | None, images: int, device: torch.device,
                    cache_dir: str | None = None, log: Callable[[str], None] = print) -> list[dict]:
    """A record per weights file (:func:`~tam.analysis.seeds.measure`), reused from ``out/records`` when valid.

    Each run is measured on ``data`` if given, else on the data source its ``config.yaml`` names.
    """
    from tam.data import load_dataset

    datasets: dict[str, tuple] = {}
    records = []
    for number, weights in enumerate(found, 1):
        source = data or weights.config.get("data")
        path = _record_path(out, weights)
        if path.is_file():
            record = json.loads(path.read_text())
            if (record.get("sha256"), record.get("images"), record.get("data"), record.get("statistics")) == (
                    sha256(weights.path), images, source, list(STATISTICS)):
                records.append(record)
                continue
        if not source or not Path(source).exists():
            raise UserError(f"{weights.run}: its data source {source!r} is not here; give it with --data")
        if source not in datasets:
            dataset = load_dataset(source, cache_dir=cache_dir)
            datasets[source] = (dataset, *test_images(dataset, images, device))
        dataset, pictures, labels = datasets[source]
        log(f"[{number}/{len(found)}] {weights.path}")
        record = measure(weights, pictures, labels, data=source, num_classes=len(dataset.classes))
        write_text_atomic(path, json.dumps(record, indent=2) + "\n")
        records.append(record)
    return records


def _environment(device: torch.device) -> dict:
    return {"torch": torch.__version__, "machine": platform.machine(), "device": str(device),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _write(out: Path, summary: dict, readme: str, figures: dict[str, bytes]) -> dict:
    for name, png in figures.items():
        write_atomic(out / name, lambda file, png=png: file.write(png))
    write_text_atomic(out / GEOMETRY_JSON, json.dumps(summary, indent=2) + "\n")
    write_text_atomic(out / README_MD, readme)
    return summary


def analyze_grid(grids: list[str | Path], out: str | Path, *, data: str | None = None, images: int = 1000,
                 device: str | torch.device = "cpu", cache_dir: str | None = None) -> dict:
    """Summarise the final weights of every finished run of the ``grids`` (``tam reproduce`` folders) into ``out``.

    Cells without attention blocks (``none``) are left out, and a weights file equal to one seen before (a run
    one grid reuses from another) counts once, in the first cell it appears in. Returns what ``geometry.json``
    holds.
    """
    out, device = Path(out), torch.device(device)
    found, seen = [], set()
    for weights in (w for grid in grids for w in grid_weights(grid) if w.config.get("attention", "none") != "none"):
        digest = sha256(weights.path)
        if digest not in seen:
            seen.add(digest)
            found.append(weights)
    if not found:
        raise UserError(f"--grid: no finished run with attention and kept final weights (<cell>/seed<k>/weights/"
                        f"epoch<E>.pt) under {', '.join(map(str, grids))}")
    records = collect_records(found, out, data=data, images=images, device=device, cache_dir=cache_dir)
    cells = aggregate(records)
    comparisons = [row for a, b in thesis_pairs(cells)
                   for statistic in ("magnitude_correlation", "direction_correlation") for row in compare(a, b, statistic)]
    summary = {"grids": [str(g) for g in grids], "images": images, **_environment(device), "cells": cells,
               "comparisons": comparisons}
    return _write(out, summary, render_grid(summary, out, SEEDS_PNG), {SEEDS_PNG: seeds_figure(cells)})


def analyze_trajectory(run: str | Path, out: str | Path, *, data: str | None = None, images: int = 1000,
                       device: str | torch.device = "cpu", cache_dir: str | None = None) -> dict:
    """Summarise the weights one run kept over its training (``--keep-weights``) into ``out``, epoch by epoch."""
    out, device = Path(out), torch.device(device)
    found = kept_weights(run)
    if found[0].config.get("attention", "none") == "none":
        raise UserError(f"--trajectory: {run} trained without attention; there is nothing to follow")
    records = collect_records(found, out, data=data, images=images, device=device, cache_dir=cache_dir)
    cells = aggregate(records)
    summary = {"run": str(run), "images": images, **_environment(device), "cells": cells}
    return _write(out, summary, render_trajectory(summary, out, TRAJECTORY_PNG),
                  {TRAJECTORY_PNG: trajectory_figure(cells, title=f"{Path(run).name}: geometry over training")})
