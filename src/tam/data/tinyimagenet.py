"""The official Tiny-ImageNet-200 folder (``tiny-imagenet-200/``, or the zip it ships as).

Layout: ``wnids.txt`` (one WordNet id per line), ``train/<wnid>/images/*.JPEG`` (500 per class, beside a
``<wnid>_boxes.txt``), ``val/images/*.JPEG`` labelled by ``val/val_annotations.txt`` (tab-separated: file,
wnid, box). ``test/`` has no labels and is not read; the val split becomes the test split. Classes are the
wnids in sorted order (the order torchvision's ImageFolder gives ``train/``). Images are 64×64; the few
grayscale ones are converted to RGB.
"""

from __future__ import annotations

import torch

from tam.data.decode import decode_images
from tam.data.tree import SourceTree, join, natural_key
from tam.errors import UserError

IMAGE_SIZE = (64, 64)


def _text(tree: SourceTree, name: str) -> list[str]:
    if name not in tree.files:
        raise UserError(f"{tree.where(name)}: missing (the official Tiny-ImageNet folder has it)")
    try:
        return tree.read(name).decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{tree.where(name)}: not a text file") from None


def read_tinyimagenet(tree: SourceTree, root: str, *, workers: int | None = None) -> dict:
    wnids = [line.strip() for line in _text(tree, join(root, "wnids.txt")) if line.strip()]
    if not wnids:
        raise UserError(f"{tree.where(join(root, 'wnids.txt'))}: lists no classes")
    if len(set(wnids)) != len(wnids):
        raise UserError(f"{tree.where(join(root, 'wnids.txt'))}: lists a class twice")
    classes = sorted(wnids)
    index = {wnid: i for i, wnid in enumerate(classes)}

    train_groups = tree.files_below(join(root, "train"))
    train_dirs, _ = tree.listdir(join(root, "train"))
    stray = sorted(set(train_dirs) - set(index))
    if stray:
        raise UserError(f"{tree.where(join(root, 'train', stray[0]))}: class folder not listed in wnids.txt")
    train_files, train_labels = [], []
    for wnid in classes:
        prefix = join(root, "train", wnid, "images") + "/"
        files = [name for name in train_groups.get(wnid, []) if name.startswith(prefix)]
        if not files:
            raise UserError(f"{tree.where(join(root, 'train', wnid, 'images'))}: empty class (no images)")
        train_files += files
        train_labels += [index[wnid]] * len(files)

    annotations = join(root, "val", "val_annotations.txt")
    val_labels_by_file: dict[str, int] = {}
    for number, line in enumerate(_text(tree, annotations), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise UserError(f"{tree.where(annotations)}: line {number}: expected '<file>\\t<wnid>\\t...'")
        file, wnid = fields[0].strip(), fields[1].strip()
        if wnid not in index:
            raise UserError(f"{tree.where(annotations)}: line {number}: class {wnid!r} is not in wnids.txt")
        val_labels_by_file[join(root, "val", "images", file)] = index[wnid]
    if not val_labels_by_file:
        raise UserError(f"{tree.where(annotations)}: no annotations")
    val_images = tree.files_below(join(root, "val", "images")).get("", [])
    unlabelled = sorted(set(val_images) - val_labels_by_file.keys())
    if unlabelled:
        raise UserError(f"{tree.where(unlabelled[0])}: not listed in {annotations.rsplit('/', 1)[-1]}")
    missing = sorted(val_labels_by_file.keys() - set(val_images))
    if missing:
        raise UserError(f"{tree.where(missing[0])}: listed in val_annotations.txt but missing")
    empty = sorted(set(classes) - {classes[label] for label in val_labels_by_file.values()})
    if empty:
        raise UserError(f"{tree.where(annotations)}: class {empty[0]} has no val images (empty class)")
    val_files = sorted(val_labels_by_file, key=natural_key)

    out = dict(name="tinyimagenet", source_format="tinyimagenet", classes=classes, test_split="val")
    for split, files, labels in (("train", train_files, train_labels), ("test", val_files, [val_labels_by_file[f] for f in val_files])):
        images = decode_images([tree.read(f) for f in files], [tree.where(f) for f in files], size=IMAGE_SIZE, workers=workers)
        out[split] = (images, torch.tensor(labels, dtype=torch.int64))
    return out
