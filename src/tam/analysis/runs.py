"""Which weights a geometry summary reads: the final weights of every finished run of a reproduction grid, or
the weights one run kept over its training (``tam train --keep-weights``).

A grid folder holds ``<cell>/seed<k>/`` run folders (``tam reproduce``); a run keeps weights as
``weights/epoch<E>.pt`` (:func:`tam.train.checkpoint.weights_path`), its final ones at ``E = epochs``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tam.errors import UserError
from tam.train.checkpoint import WEIGHTS_DIR, weights_path
from tam.train.config import load_yaml
from tam.train.loop import CONFIG_YAML

EPOCH_FILE = re.compile(r"epoch(\d+)\.pt")


@dataclass(frozen=True)
class Weights:
    """One weights file to analyse and where it belongs.

    Attributes:
        run: the run folder it came from (its ``config.yaml`` says how it was trained).
        path: the weights file.
        cell: the group it is summarised in: ``<grid folder name>/<cell>`` or ``epoch <E>``.
        seed: the run's training seed.
        epoch: epochs trained when the weights were kept.
        config: the run's ``config.yaml``.
    """

    run: Path
    path: Path
    cell: str
    seed: int
    epoch: int
    config: dict


def grid_weights(grid: str | Path) -> list[Weights]:
    """The final weights of every finished run under ``grid`` (``<cell>/seed<k>/``), in cell then seed order.

    A run counts once its final weights are there; runs still training (or never kept) are left out.
    """
    grid = Path(grid)
    if not grid.is_dir():
        raise UserError(f"--grid: {grid} is not a folder (give a `tam reproduce` experiment folder)")
    found = []
    for config_file in sorted(grid.glob(f"*/seed*/{CONFIG_YAML}")):
        run = config_file.parent
        config = load_yaml(config_file)
        path = weights_path(run, int(config.get("epochs", 0)))
        if path.is_file():
            found.append(Weights(run, path, f"{grid.name}/{run.parent.name}", int(config.get("seed", 0)),
                                 int(config["epochs"]), config))
    return found


def kept_weights(run: str | Path) -> list[Weights]:
    """Every ``weights/epoch<E>.pt`` of run folder ``run``, by epoch."""
    run = Path(run)
    if not (run / CONFIG_YAML).is_file():
        raise UserError(f"--trajectory: {run} is not a `tam train` run folder (no {CONFIG_YAML})")
    config = load_yaml(run / CONFIG_YAML)
    epochs = sorted(int(match.group(1)) for path in (run / WEIGHTS_DIR).glob("epoch*.pt")
                    if (match := EPOCH_FILE.fullmatch(path.name)))
    if not epochs:
        raise UserError(f"--trajectory: {run} kept no weights ({WEIGHTS_DIR}/epoch<E>.pt; train it with "
                        "--keep-weights 0,1,2,4,...)")
    return [Weights(run, weights_path(run, epoch), f"epoch {epoch}", int(config.get("seed", 0)), epoch, config)
            for epoch in epochs]
