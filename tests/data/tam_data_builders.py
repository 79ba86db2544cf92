"""Tiny datasets in the official formats, written by the tests, with the pixels and labels they must read back as.

Each ``*_files`` builder returns ``(files, expected)``: ``files`` maps a relative path to its bytes, ``expected``
holds the uint8 ``[N, 3, H, W]`` tensors, labels and class names a reader must produce. ``write`` lays the files
out as a folder or packs them into a tar.gz / zip.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image


class _Py2Pickler(pickle._Pickler):
    """Protocol 2 the way Python 2's cPickle wrote the CIFAR files: every string a byte string (BINSTRING)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    # numpy 2 names its reconstructor numpy._core; the official files (numpy 1) say numpy.core
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def cifar10_files(*, per_batch: int = 4, test: int = 5, seed: int = 0, root: str = "cifar-10-batches-py"):
    rng = _rng(seed)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    files, images, labels = {}, {"train": [], "test": []}, {"train": [], "test": []}
    batches = [(f"data_batch_{i}", "train", per_batch) for i in range(1, 6)] + [("test_batch", "test", test)]
    for name, split, count in batches:
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        label_list = [int(x) for x in rng.integers(0, 10, count)]
        files[f"{root}/{name}"] = py2_pickle({
            "batch_label": f"{name} of 5",
            "labels": label_list,
            "data": data,
            "filenames": [f"img_{name}_{i}.png" for i in range(count)],
        })
        images[split].append(data.reshape(-1, 3, 32, 32))
        labels[split] += label_list
    files[f"{root}/batches.meta"] = py2_pickle({"label_names": classes, "num_cases_per_batch": per_batch, "num_vis": 3072})
    files[f"{root}/readme.html"] = b"<html>CIFAR-10</html>"
    return files, _expected(images, labels, classes)


def cifar100_files(*, train: int = 12, test: int = 6, seed: int = 1, root: str = "cifar-100-python"):
    rng = _rng(seed)
    fine = [f"fine_{i:02d}" for i in range(100)]
    coarse = [f"coarse_{i:02d}" for i in range(20)]
    files, images, labels, coarse_labels = {}, {}, {}, {}
    for split, count in (("train", train), ("test", test)):
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        labels[split] = [int(x) for x in rng.integers(0, 100, count)]
        coarse_labels[split] = [label // 5 for label in labels[split]]
        files[f"{root}/{split}"] = py2_pickle({
            "filenames": [f"{split}_{i}.png" for i in range(count)],
            "batch_label": f"{split} batch",
            "fine_labels": labels[split],
            "coarse_labels": coarse_labels[split],
            "data": data,
        })
        images[split] = [data.reshape(-1, 3, 32, 32)]
    files[f"{root}/meta"] = py2_pickle({"fine_label_names": fine, "coarse_label_names": coarse})
    expected = _expected(images, labels, fine)
    expected["coarse_classes"] = coarse
    expected["train_coarse"] = torch.tensor(coarse_labels["train"])
    expected["test_coarse"] = torch.tensor(coarse_labels["test"])
    return files, expected


def encode(array: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decoded(blob: bytes) -> np.ndarray:
    """What Pillow makes of an encoded image, as RGB [H, W, 3]: the reference for lossy formats."""
    return np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))


def tinyimagenet_files(*, classes: int = 3, train_per_class: int = 3, val: int = 7, seed: int = 2,
                       root: str = "tiny-imagenet-200"):
    """Real JPEGs, 64x64, some grayscale (as in the real set); expected pixels are Pillow's decoding of them."""
    rng = _rng(seed)
    wnids = [f"n{rng.integers(10**7, 10**8):08d}" for _ in range(classes)]
    files = {f"{root}/wnids.txt": "\n".join(wnids).encode() + b"\n",
             f"{root}/words.txt": b"".join(f"{w}\tthing {i}\n".encode() for i, w in enumerate(wnids))}
    order = sorted(wnids)
    train_images, train_labels = [], []
    for wnid in order:  # expected order: classes sorted, then file names in natural order
        boxes = []
        for i in range(train_per_class):
            gray = i == 1
            pixels = rng.integers(0, 256, (64, 64) if gray else (64, 64, 3), dtype=np.uint8)
            blob = encode(pixels, "JPEG", quality=90)
            files[f"{root}/train/{wnid}/images/{wnid}_{i}.JPEG"] = blob
            boxes.append(f"{wnid}_{i}.JPEG\t0\t0\t63\t63\n")
            train_images.append(decoded(blob))
            train_labels.append(order.index(wnid))
        files[f"{root}/train/{wnid}/{wnid}_boxes.txt"] = "".join(boxes).encode()
    val_items = []
    for i in range(val):
        wnid = wnids[i % classes]
        blob = encode(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "JPEG", quality=90)
        files[f"{root}/val/images/val_{i}.JPEG"] = blob
        val_items.append((f"val_{i}.JPEG", wnid, blob))
    shuffled = [val_items[i] for i in rng.permutation(val)]  # the real file is not in file-name order
    files[f"{root}/val/val_annotations.txt"] = "".join(f"{name}\t{wnid}\t1\t2\t40\t50\n" for name, wnid, _ in shuffled).encode()
    files[f"{root}/test/images/test_0.JPEG"] = encode(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "JPEG")
    expected = {
        "classes": order,
        "train_images": _chw(train_images),
        "train_labels": torch.tensor(train_labels),
        "test_images": _chw([decoded(blob) for _, _, blob in val_items]),
        "test_labels": torch.tensor([order.index(wnid) for _, wnid, _ in val_items]),
    }
    return files, expected


def imagefolder_files(*, classes=("cat", "dog", "emu"), train: int = 3, test: int = 2, size=(8, 6), seed: int = 3,
                      root: str = "", test_split: str = "test", fmt: str = "PNG"):
    """Lossless PNGs (so pixels compare exactly), ``size`` = (width, height); file names sort naturally."""
    rng = _rng(seed)
    prefix = f"{root}/" if root else ""
    files, images, labels = {}, {"train": [], "test": []}, {"train": [], "test": []}
    for split, folder, count in (("train", "train", train), ("test", test_split, test)):
        for label, name in enumerate(sorted(classes)):
            for i in range(count):
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                files[f"{prefix}{folder}/{name}/img{i}.{fmt.lower()}"] = encode(pixels, fmt)
                images[split].append(pixels)
                labels[split].append(label)
    expected = {
        "classes": sorted(classes),
        "train_images": _chw(images["train"]),
        "train_labels": torch.tensor(labels["train"]),
        "test_images": _chw(images["test"]),
        "test_labels": torch.tensor(labels["test"]),
    }
    return files, expected


def _chw(arrays) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _expected(images, labels, classes) -> dict:
    return {
        "classes": classes,
        "train_images": torch.from_numpy(np.concatenate(images["train"])),
        "train_labels": torch.tensor(labels["train"]),
        "test_images": torch.from_numpy(np.concatenate(images["test"])),
        "test_labels": torch.tensor(labels["test"]),
    }


def write(files: dict[str, bytes], dest: Path, kind: str = "dir") -> Path:
    """Lay ``files`` out at ``dest`` as a folder (``dir``), a ``tar.gz`` or a ``zip`` (with folder entries)."""
    dest = Path(dest)
    folders = sorted({str(Path(name).parent) for name in files} - {"."})
    if kind == "dir":
        for name, data in files.items():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(data)
    elif kind == "tar.gz":
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(dest, "w:gz") as archive:
            for folder in folders:
                info = tarfile.TarInfo(folder)
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            for name, data in sorted(files.items()):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    elif kind == "zip":
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(dest, "w") as archive:
            for folder in folders:
                archive.writestr(folder + "/", b"")
            for name, data in sorted(files.items()):
                archive.writestr(name, data)
    else:
        raise ValueError(kind)
    return dest


def assert_matches(ds, expected: dict) -> None:
    assert ds.classes == list(expected["classes"])
    for split in ("train", "test"):
        images, labels = getattr(ds, f"{split}_images"), getattr(ds, f"{split}_labels")
        assert images.dtype == torch.uint8 and labels.dtype == torch.int64
        assert images.shape == expected[f"{split}_images"].shape
        assert torch.equal(images, expected[f"{split}_images"]), f"{split} pixels differ"
        assert torch.equal(labels, expected[f"{split}_labels"].to(torch.int64)), f"{split} labels differ"
