"""Checkpoints: a dict of tensors and plain Python data, written atomically, read with ``weights_only=True``.

Only tensors, numbers, strings, lists and dicts go in, so loading never runs pickled code; a file that holds
anything else is refused. Random-number states are converted to the same plain forms.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import torch

from tam.errors import UserError
from tam.files import write_atomic

FORMAT_VERSION = 1
WEIGHTS_DIR = "weights"


def save_checkpoint(path: str | Path, checkpoint: dict) -> Path:
    """Write ``checkpoint`` to ``path`` through a temporary sibling and a rename."""
    return write_atomic(path, lambda file: torch.save({"format": FORMAT_VERSION, **checkpoint}, file))


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing files that hold arbitrary Python objects."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: refused: the file holds non-tensor Python objects, which are not loaded "
                        f"for safety ({first_line})") from None
    except (RuntimeError, EOFError) as error:
        raise UserError(f"{path}: not a readable checkpoint ({error})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT_VERSION:
        raise UserError(f"{path}: not a tam training checkpoint (format {FORMAT_VERSION} expected)")
    return checkpoint


def weights_path(run: str | Path, epoch: int) -> Path:
    """Where ``tam train --keep-weights`` keeps the model weights after ``epoch`` (0: at init) in run folder ``run``."""
    return Path(run) / WEIGHTS_DIR / f"epoch{epoch}.pt"


def save_weights(run: str | Path, epoch: int, config: dict, model: torch.nn.Module) -> Path:
    """Keep ``model``'s weights after ``epoch`` as a checkpoint with only ``epoch``, ``config`` and ``model``.

    It loads wherever a training checkpoint does for analysis (``tam analyze --checkpoint``), but cannot resume.
    """
    return save_checkpoint(weights_path(run, epoch), {"epoch": epoch, "config": config, "model": model.state_dict()})


def rng_state() -> dict:
    """Every global random state, as tensors and plain data."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, list(internal), gauss],
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = state["numpy"]
    np.random.set_state((numpy["name"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached"]))
