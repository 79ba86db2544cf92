"""Checkpoints: a dict of tensors and plain Python data, written atomically with a checksum
(:mod:`tam.verified`), read with ``weights_only=True``.

Only tensors, numbers, strings, lists and dicts go in, so loading never runs pickled code; a file that holds
anything else is refused, and so is one whose bytes no longer match its checksum. Random-number states are
converted to the same plain forms.

Formats: 2 (this tam) carries a checksum and the fingerprint and size of the data it trained on; 1 (before
checksums) still loads, with a note that it could not be verified.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tam.errors import UserError
from tam.verified import load_verified, save_verified

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
WEIGHTS_DIR = "weights"
# What each use of a checkpoint needs from it.
MODEL_KEYS = ("epoch", "config", "model")
RESUME_KEYS = (*MODEL_KEYS, "optimizer", "scheduler", "scaler", "loader", "rng")
_MAPPINGS = ("config", "model", "optimizer", "scheduler", "scaler", "loader", "rng", "data")


def save_checkpoint(path: str | Path, checkpoint: dict) -> Path:
    """Write ``checkpoint`` (plus its format number) to ``path`` atomically, with a checksum."""
    return save_verified({"format": FORMAT_VERSION, **checkpoint}, path)


def load_checkpoint(path: str | Path, *, needs: tuple[str, ...] = ()) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Args:
        needs: keys the caller uses (:data:`MODEL_KEYS`, :data:`RESUME_KEYS`); a checkpoint without one is
            refused, naming it and the file's format.

    Raises:
        UserError: the file is missing, damaged (checksum), unreadable, holds Python objects, is not a tam
            checkpoint, is of a format this tam does not read, or lacks a needed key.
    """
    path = Path(path)
    unverified = []
    checkpoint = load_verified(path, what="checkpoint", on_unverified=lambda: unverified.append(True))
    version = checkpoint.get("format") if isinstance(checkpoint, dict) else None
    if version is None:
        raise UserError(f"{path}: not a tam training checkpoint (no format number; a file of another program?)")
    if version not in READABLE_FORMATS:
        raise UserError(f"{path}: checkpoint format {version!r}; this tam reads formats "
                        f"{', '.join(map(str, READABLE_FORMATS))} (write it again with this tam)")
    if unverified:
        if version >= 2:
            raise UserError(f"{path}: checkpoint format {version} without its checksum: the file was altered")
        print(f"tam: note: {path}: checkpoint format {version}, written before checksums: loaded unverified",
              file=sys.stderr)
    missing = [key for key in needs if key not in checkpoint]
    if missing:
        raise UserError(f"{path}: checkpoint format {version} lacks {', '.join(map(repr, missing))}, which this "
                        "use needs (an incomplete or older file)")
    malformed = [key for key in _MAPPINGS if key in checkpoint and not isinstance(checkpoint[key], dict)]
    if malformed:
        kind = type(checkpoint[malformed[0]]).__name__
        raise UserError(f"{path}: malformed checkpoint: {malformed[0]!r} is a {kind}, not a mapping")
    return checkpoint


def load_weights(model: nn.Module, state: dict, path: str | Path, *, what: str) -> None:
    """``model.load_state_dict(state)`` (strict), its failure stated as one line naming ``path``.

    ``what`` says what the model is (e.g. ``"preresnet20 with 10 classes"``)."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as error:
        keys = set(model.state_dict())
        given = set(state) if isinstance(state, dict) else set()
        missing, unexpected = sorted(keys - given), sorted(given - keys)
        if missing or unexpected:
            detail = "; ".join(part for part in (
                f"missing {len(missing)} key(s) such as {missing[0]!r}" if missing else "",
                f"{len(unexpected)} unexpected key(s) such as {unexpected[0]!r}" if unexpected else "") if part)
        else:
            detail = " ".join(str(error).split())[:200]
        raise UserError(f"{path}: its weights do not fit {what} ({detail}): weights of another model?") from None


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
