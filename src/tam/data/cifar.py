"""The official CIFAR-10 / CIFAR-100 python releases (``cifar-10-python.tar.gz``, ``cifar-100-python.tar.gz``).

CIFAR-10: ``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``; each batch a pickled dict with
``data`` (uint8 ``[10000, 3072]``, channel-major rows of 32×32) and ``labels``; ``batches.meta`` has
``label_names``. CIFAR-100: ``cifar-100-python/{train, test, meta}`` with ``fine_labels`` and
``coarse_labels``; ``meta`` has ``fine_label_names`` and ``coarse_label_names``. Pickles go through
:mod:`tam.data.safe_pickle`.
"""

from __future__ import annotations

import numpy as np
import torch

from tam.data.safe_pickle import safe_loads
from tam.data.tree import SourceTree, join
from tam.errors import UserError

CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch", "batches.meta")


def _load(tree: SourceTree, name: str) -> dict:
    if name not in tree.files:
        raise UserError(f"{tree.where(name)}: missing (an official CIFAR release has it)")
    try:
        obj = safe_loads(tree.read(name))
    except UserError:
        raise
    except Exception as error:  # truncated or garbage pickles raise all sorts of things
        if str(error).startswith("refused"):  # safe_pickle's refusals say what they refused
            raise UserError(f"{tree.where(name)}: {error}") from None
        raise UserError(f"{tree.where(name)}: not a readable CIFAR pickle ({type(error).__name__}: {error})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{tree.where(name)}: not a CIFAR file (expected a dict, found {type(obj).__name__})")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _field(tree: SourceTree, name: str, batch: dict, key: str):
    if key not in batch:
        raise UserError(f"{tree.where(name)}: not a CIFAR file (no {key!r} entry)")
    return batch[key]


def _names(tree: SourceTree, name: str, meta: dict, key: str) -> list[str]:
    values = _field(tree, name, meta, key)
    if not isinstance(values, list) or not values or not all(isinstance(v, (bytes, str)) for v in values):
        raise UserError(f"{tree.where(name)}: {key!r} is not a list of class names")
    return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]


def _images(tree: SourceTree, name: str, batch: dict) -> torch.Tensor:
    data = _field(tree, name, batch, "data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        shape = getattr(data, "shape", None)
        raise UserError(f"{tree.where(name)}: 'data' is not a uint8 array of N x 3072 (found {shape})")
    return torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32))


def _labels(tree: SourceTree, name: str, batch: dict, key: str, count: int, classes: int) -> torch.Tensor:
    values = _field(tree, name, batch, key)
    try:
        labels = torch.as_tensor(np.asarray(values, dtype=np.int64).reshape(-1))
    except (TypeError, ValueError):
        raise UserError(f"{tree.where(name)}: {key!r} is not a list of integers") from None
    if labels.numel() != count:
        raise UserError(f"{tree.where(name)}: {labels.numel()} {key} for {count} images")
    if count and (labels.min() < 0 or labels.max() >= classes):
        raise UserError(f"{tree.where(name)}: {key} outside 0..{classes - 1}")
    return labels


def read_cifar10(tree: SourceTree, root: str) -> dict:
    meta = join(root, "batches.meta")
    classes = _names(tree, meta, _load(tree, meta), "label_names")
    splits = {}
    for split, files in (("train", CIFAR10_FILES[:5]), ("test", CIFAR10_FILES[5:6])):
        images, labels = [], []
        for file in files:
            name = join(root, file)
            batch = _load(tree, name)
            images.append(_images(tree, name, batch))
            labels.append(_labels(tree, name, batch, "labels", len(images[-1]), len(classes)))
        splits[split] = (torch.cat(images), torch.cat(labels))
    return dict(
        name="cifar10",
        source_format="cifar-python",
        classes=classes,
        train=splits["train"],
        test=splits["test"],
    )


def read_cifar100(tree: SourceTree, root: str) -> dict:
    meta_name = join(root, "meta")
    meta = _load(tree, meta_name)
    fine = _names(tree, meta_name, meta, "fine_label_names")
    coarse = _names(tree, meta_name, meta, "coarse_label_names")
    out = dict(name="cifar100", source_format="cifar-python", classes=fine, coarse_classes=coarse)
    for split in ("train", "test"):
        name = join(root, split)
        batch = _load(tree, name)
        images = _images(tree, name, batch)
        out[split] = (images, _labels(tree, name, batch, "fine_labels", len(images), len(fine)))
        out[f"{split}_coarse"] = _labels(tree, name, batch, "coarse_labels", len(images), len(coarse))
    return out
