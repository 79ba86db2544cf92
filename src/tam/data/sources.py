"""Recognise a source's format and read it into a :class:`PreparedDataset`.

A source is a folder or an archive (tar, tar.gz/bz2/xz, zip) holding one of: the CIFAR-10 python release, the
CIFAR-100 python release, the Tiny-ImageNet folder, or an image-folder tree. The dataset may sit at the top or
inside a folder (``cifar-10-batches-py/``, ``tiny-imagenet-200/``, ...); the shallowest match is used, and two
different datasets at that depth are an error.
"""

from __future__ import annotations

import re
from pathlib import Path

from tam.data import dataset as D
from tam.data.cifar import read_cifar10, read_cifar100
from tam.data.imagefolder import read_imagefolder, test_split_of
from tam.data.tinyimagenet import read_tinyimagenet
from tam.data.tree import SourceTree, is_hidden, open_tree
from tam.errors import UserError

_PRIORITY = {"cifar10": 0, "cifar100": 0, "tinyimagenet": 0, "imagefolder": 1}
_WNID = re.compile(r"n\d{8}")


def detect(tree: SourceTree) -> tuple[str, str]:
    """``(format, root)`` of the dataset in ``tree``: format is ``cifar10``, ``cifar100``, ``tinyimagenet``
    or ``imagefolder``; root the folder inside the tree that holds it (``""`` for the top)."""
    found: dict[str, str] = {}

    def offer(root: str, kind: str) -> None:
        if root not in found or _PRIORITY[kind] < _PRIORITY[found[root]]:
            found[root] = kind

    for name in tree.files:
        if is_hidden(name):
            continue
        root, _, base = name.rpartition("/")
        prefix = f"{root}/" if root else ""
        if base == "data_batch_1":
            offer(root, "cifar10")
        elif base == "meta" and f"{prefix}train" in tree.files and f"{prefix}test" in tree.files:
            offer(root, "cifar100")
        elif base == "wnids.txt" and f"{prefix}train" in tree.dirs:
            offer(root, "tinyimagenet")
    for folder in tree.dirs:
        parent, _, base = folder.rpartition("/")
        if base == "train" and not is_hidden(folder) and test_split_of(tree, parent):
            offer(parent, "imagefolder")
    if not found:
        raise UserError(
            f"{tree.path}: no dataset found (expected the CIFAR-10/100 python files, a Tiny-ImageNet folder, "
            "or train/<class>/ and test/<class>/ image folders)"
        )
    depth = lambda root: root.count("/") + 1 if root else 0  # noqa: E731
    shallowest = min(depth(root) for root in found)
    roots = sorted(root for root in found if depth(root) == shallowest)
    if len(roots) > 1:
        listed = ", ".join(f"{root or '.'}/ ({found[root]})" for root in roots[:4])
        raise UserError(f"{tree.path}: holds several datasets ({listed}); point at one of them")
    return found[roots[0]], roots[0]


def _recipe(out: dict, image_size: tuple[int, int]) -> tuple[str, tuple, tuple, str]:
    """``(name, mean, std, augment)``: known datasets get their DESIGN §4 recipe, whatever their format."""
    classes, name = out["classes"], out.get("name")
    if name is None:  # an image folder: recognise the known datasets by their classes and size
        if image_size == (32, 32) and tuple(classes) == D.CIFAR10_CLASSES:
            name = "cifar10"
        elif image_size == (32, 32) and tuple(classes) == D.CIFAR100_CLASSES:
            name = "cifar100"
        elif image_size == (64, 64) and len(classes) == 200 and all(_WNID.fullmatch(c) for c in classes):
            name = "tinyimagenet"
        else:
            name = "imagefolder"
    if name in ("cifar10", "cifar100"):
        return name, D.CIFAR_MEAN, D.CIFAR_STD, "cifar"
    if name == "tinyimagenet":
        return name, D.IMAGENET_MEAN, D.IMAGENET_STD, "tinyimagenet"
    return name, None, None, "cifar" if max(image_size) <= 32 else "tinyimagenet"


def read_source(path: str | Path, *, workers: int | None = None) -> D.PreparedDataset:
    """Read a raw source into a :class:`PreparedDataset` (not cached; see :func:`tam.data.prepare`)."""
    path = Path(path)
    with open_tree(path) as tree:
        kind, root = detect(tree)
        if kind == "cifar10":
            out = read_cifar10(tree, root)
        elif kind == "cifar100":
            out = read_cifar100(tree, root)
        elif kind == "tinyimagenet":
            out = read_tinyimagenet(tree, root, workers=workers)
        else:
            out = read_imagefolder(tree, root, workers=workers)
    (train_images, train_labels), (test_images, test_labels) = out["train"], out["test"]
    if len(train_labels) == 0 or len(test_labels) == 0:
        raise UserError(f"{path}: the {'train' if len(train_labels) == 0 else 'test'} split has no images")
    name, mean, std, augment = _recipe(out, tuple(train_images.shape[2:]))
    pixel_mean, pixel_std = D.pixel_statistics(train_images)
    return D.PreparedDataset(
        name=name,
        classes=list(out["classes"]),
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        mean=tuple(mean or pixel_mean),
        std=tuple(std or pixel_std),
        augment=augment,
        source_format=out["source_format"],
        source=str(path),
        test_split=out.get("test_split", "test"),
        pixel_mean=pixel_mean,
        pixel_std=pixel_std,
        coarse_classes=out.get("coarse_classes"),
        train_coarse_labels=out.get("train_coarse"),
        test_coarse_labels=out.get("test_coarse"),
    )
