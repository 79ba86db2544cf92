"""A trained model back from a `tam train` checkpoint: rebuilt from its stored config, weights loaded strictly."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from tam.train.checkpoint import MODEL_KEYS, load_checkpoint, load_weights
from tam.train.config import from_dict
from tam.train.metrics import read_metrics
from tam.train.model import model_from_config


def load_trained(path: str | Path, num_classes: int, run: str | Path | None = None, *,
                 checkpoint: dict | None = None) -> tuple[nn.Module, dict]:
    """The model of checkpoint ``path`` in eval mode, and a description of it for reports.

    The description says which model, which checkpoint and epoch, and the test top-1 that training logged at
    that epoch (from the ``metrics.jsonl`` of run folder ``run``, default the checkpoint's folder, when present).
    ``checkpoint``: the file's contents when the caller has already loaded them.
    """
    path = Path(path)
    if checkpoint is None:
        checkpoint = load_checkpoint(path, needs=MODEL_KEYS)
    config = from_dict(checkpoint["config"], source=str(path))
    model = model_from_config(config, num_classes)
    load_weights(model, checkpoint["model"], path, what=f"{config.model} with {num_classes} classes (the classes "
                                                         "of --data)")
    epoch = checkpoint.get("epoch")
    records = read_metrics(Path(run) if run is not None else path.parent)
    logged = next((r for r in records if r.get("epoch") == epoch), None)
    options = "".join(f", {k}={v}" for k, v in config.attention_options.items())
    attention = "none" if config.attention == "none" else (
        f"{config.attention} (heads {config.heads}, blocks {config.attention_blocks}{options})")
    subset = f", {config.limit_train} training images" if config.limit_train else ""
    about = {
        "label": f"{config.model} + {config.attention}",
        "checkpoint": f"{path} (epoch {epoch} of {config.epochs})",
        "trained": f"{config.model}, attention {attention}, {config.data}{subset}, seed {config.seed}"
                   + (f"; test top-1 {logged['test_top1']:.2f}% at epoch {epoch}" if logged else ""),
        "model": config.model,
        "attention": config.attention,
        "epoch": epoch,
        "test_top1_logged": logged["test_top1"] if logged else None,
    }
    return model.eval(), about
