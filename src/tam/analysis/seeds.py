"""Geometry over seeds: the statistics of each weights file (:func:`measure`), then per cell and block their
mean ± std over seeds (:func:`aggregate`), and the thesis's comparison of Non-local softmax with TAM
(:func:`compare`).

A record is what one weights file gave on one set of images; a cell is the records of one configuration::

    record = measure(weights, images, labels, data="cifar10-jpeg.tar.gz")
    cells = aggregate([record, ...])             # [{"cell", "seeds", "blocks": [{"magnitude_correlation": ...}]}]
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
from torch import Tensor

from tam.analysis.intervals import Difference, mean_std, seeds_to_resolve, welch_interval
from tam.analysis.maps import attention_blocks, capture_inputs
from tam.analysis.model import load_trained
from tam.analysis.runs import Weights
from tam.analysis.statistics import block_statistics

# The per-block statistics summarised over seeds (names of BlockStatistics.summary()).
STATISTICS = ("magnitude_correlation", "direction_correlation", "factor_correlation", "row_entropy", "logit_spread")


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@torch.no_grad()
def measure(weights: Weights, images: Tensor, labels: Tensor, *, data: str, num_classes: int) -> dict:
    """Every attention block's statistics for the model of ``weights`` on ``images`` (all query positions).

    Returns a record: where the weights came from (run folder, file, its sha256, cell, seed, epoch), the data
    and image count, the accuracy on these images, and per block the mean over images and heads of each of
    :data:`STATISTICS` it has (``logit_spread`` only for softmax maps; none for TAM softmax, which has no
    spatial map).

    Shape:
        images: ``[B, 3, H, W]`` normalised, on the device to run on; labels: ``[B]``.
    """
    model, about = load_trained(weights.path, num_classes, weights.run)
    model.to(images.device)
    logits, inputs = capture_inputs(model, images)
    blocks = []
    for name, block in attention_blocks(model):
        summary = block_statistics(name, block, inputs[name]).summary()
        blocks.append({
            **{key: summary[key] for key in ("name", "kind", "normalization", "geometry", "heads", "spatial")},
            "queries_per_image": math.prod(summary["spatial"]),
            **{key: summary[key]["mean"] for key in STATISTICS if key in summary},
        })
    return {
        "statistics": list(STATISTICS), "cell": weights.cell, "seed": weights.seed, "epoch": weights.epoch,
        "run": str(weights.run), "weights": str(weights.path), "sha256": sha256(weights.path),
        "data": data, "images": len(images),
        "top1_on_images": round(100 * (logits.argmax(1) == labels).double().mean().item(), 2),
        "test_top1_logged": about["test_top1_logged"],
        "trained": about["trained"], "train_images": weights.config.get("limit_train"),
        "blocks": blocks,
    }


def _spread(values: list[float]) -> dict:
    mean, std = mean_std(values)
    return {"mean": round(mean, 4), "std": None if std is None else round(std, 4), "values": values}


def aggregate(records: list[dict]) -> list[dict]:
    """Records grouped by cell (in order of first appearance), per block each statistic's mean ± std over seeds.

    A cell holds its seeds, run folders, weights files, image count and, per block, ``queries_per_image``,
    and ``{"mean", "std", "values"}`` for each statistic (std None for one seed), values in seed order.
    """
    cells: dict[str, list[dict]] = {}
    for record in records:
        cells.setdefault(record["cell"], []).append(record)
    out = []
    for cell, members in cells.items():
        members = sorted(members, key=lambda r: r["seed"])
        first = members[0]["blocks"]
        blocks = []
        for index, block in enumerate(first):
            entry = {key: block[key] for key in ("name", "kind", "normalization", "geometry", "heads", "spatial",
                                                  "queries_per_image")}
            for statistic in STATISTICS:
                if statistic in block:
                    entry[statistic] = _spread([m["blocks"][index][statistic] for m in members])
            blocks.append(entry)
        out.append({
            "cell": cell, "seeds": [m["seed"] for m in members], "epoch": sorted({m["epoch"] for m in members}),
            "runs": [m["run"] for m in members], "weights": [m["weights"] for m in members],
            "images": sorted({m["images"] for m in members}), "trained": members[0]["trained"],
            "train_images": sorted({m.get("train_images") or 0 for m in members}),
            "top1_on_images": _spread([m["top1_on_images"] for m in members]),
            "test_top1_logged": [m["test_top1_logged"] for m in members],
            "blocks": blocks,
        })
    return out


def is_kind(cell: dict, kind: str, normalization: str, geometry: str = "full") -> bool:
    """Whether every block of ``cell`` is ``kind`` with ``normalization`` and ``geometry``."""
    blocks = cell["blocks"]
    return bool(blocks) and all(
        (b["kind"], b["normalization"], b["geometry"]) == (kind, normalization, geometry) for b in blocks)


def compare(a: dict, b: dict, statistic: str = "magnitude_correlation", level: float = 0.95) -> list[dict]:
    """Per block of two cells (matched by name): ``a − b`` of ``statistic``'s seed means, with Welch's interval."""
    theirs = {block["name"]: block for block in b["blocks"]}
    rows = []
    for block in a["blocks"]:
        other = theirs.get(block["name"])
        if other is None or statistic not in block or statistic not in other:
            continue
        difference: Difference = welch_interval(block[statistic]["values"], other[statistic]["values"], level)
        rows.append({"block": block["name"], "statistic": statistic, "a": a["cell"], "b": b["cell"],
                     "difference": round(difference.difference, 4),
                     "low": None if difference.low is None else round(difference.low, 4),
                     "high": None if difference.high is None else round(difference.high, 4),
                     "df": None if difference.df is None else round(difference.df, 2),
                     "level": level, "seeds": list(difference.counts), "verdict": difference.verdict(),
                     "seeds_to_resolve": seeds_to_resolve(block[statistic]["values"], other[statistic]["values"],
                                                          level)})
    return rows


def thesis_pairs(cells: list[dict]) -> list[tuple[dict, dict]]:
    """(Non-local softmax, TAM scale) cells at equal heads, both with full geometry; the first of each in order."""
    pairs = []
    for heads in sorted({c["blocks"][0]["heads"] for c in cells if c["blocks"]}):
        at = [c for c in cells if c["blocks"] and c["blocks"][0]["heads"] == heads]
        non_local = next((c for c in at if is_kind(c, "nl", "softmax")), None)
        transposed = next((c for c in at if is_kind(c, "tam", "scale")), None)
        if non_local and transposed:
            pairs.append((non_local, transposed))
    return pairs
