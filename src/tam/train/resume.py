"""Resuming a run: which checkpoint, whether it belongs to this config and this data, and restoring it.

A run resumes only where it would have been had it never stopped: the checkpoint's config must match in every
key that shapes the trajectory (those its digest covers), and so must the data it trained on (the source's
fingerprint and split sizes; where the data lies may change). Each
refusal says what differs; a state that does not fit the model or optimizer is one line, not a traceback.
"""

from __future__ import annotations

from pathlib import Path

from tam.errors import UserError
from tam.train.checkpoint import RESUME_KEYS, load_checkpoint, load_weights, set_rng_state
from tam.train.config import TrainConfig, incompatible_keys


def checkpoint_to_resume(path: Path, config: TrainConfig, resume: bool) -> dict | None:
    """The checkpoint at ``path`` to continue (``None``: start from scratch); refuses an incompatible config."""
    if not resume:
        if path.exists():
            raise UserError(f"{path}: a checkpoint exists; pass --resume to continue it, --overwrite to start "
                            "afresh, or choose another --out")
        return None
    if not path.exists():
        print(f"{path}: no checkpoint yet; starting from scratch", flush=True)
        return None
    checkpoint = load_checkpoint(path, needs=RESUME_KEYS)
    print(f"{path}: resuming after epoch {checkpoint['epoch']} of {config.epochs}", flush=True)
    # Key by key rather than by digest, so that a key becoming resumable (as `data` did: the data is compared by
    # its fingerprint) leaves older checkpoints resumable.
    differences = incompatible_keys(checkpoint["config"], config)
    if differences:
        raise UserError(f"{path}: cannot resume with a different config: {'; '.join(differences)}")
    if checkpoint["epoch"] > config.epochs:
        raise UserError(f"epochs: {config.epochs} is fewer than the {checkpoint['epoch']} the checkpoint at "
                        f"{path} already completed")
    return checkpoint


def data_identity(dataset) -> dict:
    """What a checkpoint records of its data: the source's fingerprint and the split sizes."""
    return {"name": dataset.name, "fingerprint": dataset.fingerprint, "train": len(dataset.train_labels),
            "test": len(dataset.test_labels)}


def check_same_data(checkpoint: dict, dataset, path: Path) -> None:
    """Refuse to resume on data other than the checkpoint's, naming what differs."""
    stored = checkpoint.get("data")
    if stored is None:
        print(f"tam: note: {path}: written before checkpoints recorded their data; its data is not compared",
              flush=True)
        return
    now = data_identity(dataset)
    differences = [f"{key} {stored.get(key)!r} -> {now[key]!r}" for key in ("fingerprint", "train", "test")
                   if stored.get(key) != now[key]]
    if differences:
        raise UserError(f"{path}: cannot resume on other data than the checkpoint's ({'; '.join(differences)}): "
                        "point --data at the data it trained on, or pass --overwrite to start afresh")


def restore(checkpoint: dict, path: Path, *, model, optimizer, scheduler, scaler, loader, description: str) -> int:
    """Load every state of ``checkpoint`` into the run's objects; returns the epoch to start from."""
    load_weights(model, checkpoint["model"], path, what=description)
    try:
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        loader.load_state_dict(checkpoint["loader"])
        set_rng_state(checkpoint["rng"])
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as error:
        reason = " ".join(str(error).split())[:160] or type(error).__name__
        raise UserError(f"{path}: its training state does not fit this run ({reason}); pass --overwrite to start "
                        "afresh") from None
    return checkpoint["epoch"]
