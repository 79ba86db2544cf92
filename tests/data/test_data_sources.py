"""Every official format, as a folder and as an archive, reads back exactly: pixels, labels, class names."""

import pytest
import torch
from tam_data_builders import (
    assert_matches,
    cifar10_files,
    cifar100_files,
    imagefolder_files,
    tinyimagenet_files,
    write,
)

from tam.data import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, read_source
from tam.data.dataset import CIFAR10_CLASSES, pixel_statistics
from tam.data.decode import decode_images
from tam.errors import UserError

KINDS = [("dir", "src"), ("tar.gz", "src.tar.gz"), ("zip", "src.zip")]


@pytest.mark.parametrize("kind, name", KINDS)
def test_cifar10_python_release(tmp_path, kind, name):
    files, expected = cifar10_files()
    ds = read_source(write(files, tmp_path / name, kind))
    assert_matches(ds, expected)
    assert (ds.name, ds.source_format, ds.augment) == ("cifar10", "cifar-python", "cifar")
    assert (ds.mean, ds.std) == (CIFAR_MEAN, CIFAR_STD)
    assert len(ds.train_labels) == 20 and len(ds.test_labels) == 5


def test_cifar10_extracted_folder_itself(tmp_path):
    """Pointing at cifar-10-batches-py/ directly works as well as pointing at its parent."""
    files, expected = cifar10_files()
    write(files, tmp_path)
    assert_matches(read_source(tmp_path / "cifar-10-batches-py"), expected)


@pytest.mark.parametrize("kind, name", KINDS[:2])
def test_cifar100_python_release_fine_and_coarse(tmp_path, kind, name):
    files, expected = cifar100_files()
    ds = read_source(write(files, tmp_path / name, kind))
    assert_matches(ds, expected)
    assert (ds.name, ds.augment) == ("cifar100", "cifar")
    assert ds.coarse_classes == expected["coarse_classes"]
    assert torch.equal(ds.train_coarse_labels, expected["train_coarse"])
    assert torch.equal(ds.test_coarse_labels, expected["test_coarse"])
    coarse = ds.coarse()
    assert coarse.num_classes == 20 and coarse.name == "cifar100-coarse"
    assert torch.equal(coarse.test_labels, expected["test_coarse"])
    assert coarse.train_images is ds.train_images


@pytest.mark.parametrize("kind, name", KINDS)
def test_tinyimagenet_official_folder(tmp_path, kind, name):
    files, expected = tinyimagenet_files()
    ds = read_source(write(files, tmp_path / name, kind))
    assert_matches(ds, expected)  # includes grayscale JPEGs converted to RGB, val labels from the annotations
    assert (ds.name, ds.source_format, ds.augment, ds.test_split) == ("tinyimagenet", "tinyimagenet", "tinyimagenet", "val")
    assert (ds.mean, ds.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert ds.image_shape == (3, 64, 64)


@pytest.mark.parametrize("kind, name", KINDS)
def test_image_folder(tmp_path, kind, name):
    files, expected = imagefolder_files()
    ds = read_source(write(files, tmp_path / name, kind))
    assert_matches(ds, expected)
    assert (ds.name, ds.source_format, ds.test_split) == ("imagefolder", "imagefolder", "test")
    assert ds.image_shape == (3, 6, 8)
    # an unknown dataset is normalised with its own measured train statistics
    assert ds.mean == ds.pixel_mean and ds.std == ds.pixel_std
    assert ds.pixel_mean == pixel_statistics(expected["train_images"])[0]


def test_image_folder_with_val_split_inside_a_top_folder(tmp_path):
    files, expected = imagefolder_files(root="mydata", test_split="val", fmt="BMP")
    ds = read_source(write(files, tmp_path / "a.tar.gz", "tar.gz"))
    assert_matches(ds, expected)
    assert ds.test_split == "val"


def test_image_folder_nested_files_and_natural_order(tmp_path):
    files, _ = imagefolder_files(classes=("a",), train=12, test=1)
    files = {name.replace("train/a/", "train/a/sub/") if name.endswith("img1.png") else name: blob
             for name, blob in files.items()}
    ds = read_source(write(files, tmp_path / "src"))
    assert len(ds.train_labels) == 12  # img1 found in a nested folder; img2 sorts before img10


def test_image_folder_with_cifar10_classes_gets_the_cifar10_recipe(tmp_path):
    files, expected = imagefolder_files(classes=CIFAR10_CLASSES, train=1, test=1, size=(32, 32))
    ds = read_source(write(files, tmp_path / "c.tar.gz", "tar.gz"))
    assert_matches(ds, expected)
    assert (ds.name, ds.source_format, ds.augment) == ("cifar10", "imagefolder", "cifar")
    assert (ds.mean, ds.std) == (CIFAR_MEAN, CIFAR_STD)


def test_hidden_files_are_ignored(tmp_path):
    files, expected = imagefolder_files()
    files["train/cat/.DS_Store"] = b"junk"
    files["__MACOSX/train/cat/._img0.png"] = b"junk"
    assert_matches(read_source(write(files, tmp_path / "s.zip", "zip")), expected)


def test_decoding_in_a_process_pool_gives_the_same_tensor_and_names_the_bad_file(monkeypatch):
    from tam.data import decode
    from tam_data_builders import encode

    blobs = [encode(torch.randint(0, 256, (5, 7, 3), dtype=torch.uint8).numpy(), "PNG") for _ in range(600)]
    names = [f"img{i}" for i in range(600)]
    inline = decode_images(blobs, names, workers=1)
    monkeypatch.setattr(decode, "INLINE_BELOW", 0)
    pooled = decode_images(blobs, names, workers=2)  # 3 chunks of at most 256
    assert torch.equal(inline, pooled) and inline.shape == (600, 3, 5, 7)
    blobs[555] = b"not an image at all"
    blobs[580] = blobs[0][:40]  # truncated, later: the first problem in dataset order is reported
    with pytest.raises(UserError, match=r"^img555: not an image"):
        decode_images(blobs, names, workers=2)
