"""Image-folder trees: ``train/<class>/*`` and ``test/<class>/*`` (or ``val/<class>/*``), as torchvision's
ImageFolder reads them, in a folder or an archive.

Classes are the train folder's subfolders, sorted (so CIFAR-10 folders give the official label order). Files
may sit in nested folders below their class folder. Every non-hidden file is expected to be an image: a file
Pillow cannot read is an error naming it, not something skipped silently. The test split must have exactly the
train split's classes and no class may be empty.
"""

from __future__ import annotations

import torch

from tam.data.decode import decode_images
from tam.data.tree import SourceTree, join
from tam.errors import UserError


def test_split_of(tree: SourceTree, root: str) -> str | None:
    subdirs, _ = tree.listdir(root)
    for split in ("test", "val"):
        if split in subdirs:
            return split
    return None


def _classes(tree: SourceTree, folder: str) -> dict[str, list[str]]:
    groups = tree.files_below(folder)
    loose = groups.pop("", [])
    if loose:
        raise UserError(f"{tree.where(loose[0])}: not inside a class folder (expected {folder}/<class>/<image>)")
    subdirs, _ = tree.listdir(folder)
    for name in subdirs:  # class folders with no files at all
        groups.setdefault(name, [])
    for name, files in sorted(groups.items()):
        if not files:
            raise UserError(f"{tree.where(f'{folder}/{name}')}: empty class folder (no images)")
    if not groups:
        raise UserError(f"{tree.where(folder)}: no class folders")
    return dict(sorted(groups.items()))


def read_imagefolder(tree: SourceTree, root: str, *, workers: int | None = None) -> dict:
    test_split = test_split_of(tree, root)
    if test_split is None:
        raise UserError(f"{tree.where(root)}: image folder without a test/ or val/ folder beside train/")
    train = _classes(tree, join(root, "train"))
    test = _classes(tree, join(root, test_split))
    if train.keys() != test.keys():
        only_train = sorted(train.keys() - test.keys())
        only_test = sorted(test.keys() - train.keys())
        listing = lambda names: ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")  # noqa: E731
        detail = []
        if only_train:
            detail.append(f"only in train/: {listing(only_train)}")
        if only_test:
            detail.append(f"only in {test_split}/: {listing(only_test)}")
        raise UserError(f"{tree.where(root)}: class folders differ between train/ and {test_split}/ ({'; '.join(detail)})")
    classes = list(train)
    out = dict(source_format="imagefolder", classes=classes, test_split=test_split)
    size = None
    for split, groups in (("train", train), ("test", test)):
        files = [name for label in classes for name in groups[label]]
        labels = torch.tensor([i for i, label in enumerate(classes) for _ in groups[label]], dtype=torch.int64)
        images = decode_images([tree.read(f) for f in files], [tree.where(f) for f in files], size=size, workers=workers)
        size = (images.shape[3], images.shape[2])
        out[split] = (images, labels)
    return out
