"""The shared real CIFAR-10 (JPEG folders in a .tar.gz) prepares to what its README says."""

import pytest
import torch

from tam.data import CIFAR10_CLASSES, build_loaders, load_dataset

README_TRAIN_MEAN = (0.4913, 0.4821, 0.4465)  # ../shared/data/README.md, 0-1 scale
README_TRAIN_STD = (0.2452, 0.2428, 0.2606)


# Preparation and load times are measured by `tam data bench` (results/loader/), not asserted here: a test
# that times itself fails on a busy machine.
@pytest.fixture(scope="module")
def prepared(cifar10_jpeg, tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("cache")
    return load_dataset(cifar10_jpeg, cache_dir=cache_dir), cache_dir


def test_counts_classes_and_recipe(prepared):
    ds, _ = prepared
    assert (len(ds.train_labels), len(ds.test_labels)) == (50_000, 10_000)
    assert ds.classes == list(CIFAR10_CLASSES)  # the documented (official) order
    assert torch.equal(torch.bincount(ds.train_labels), torch.full((10,), 5000))
    assert torch.equal(torch.bincount(ds.test_labels), torch.full((10,), 1000))
    assert ds.image_shape == (3, 32, 32) and ds.train_images.dtype == torch.uint8
    assert (ds.name, ds.source_format, ds.augment) == ("cifar10", "imagefolder", "cifar")


def test_train_mean_and_std_match_the_readme(prepared):
    ds, _ = prepared
    for got, want in zip(ds.pixel_mean, README_TRAIN_MEAN):
        assert abs(got - want) < 0.002
    for got, want in zip(ds.pixel_std, README_TRAIN_STD):
        assert abs(got - want) < 0.002


def test_cache_loads_identically(prepared):
    ds, cache_dir = prepared
    (cache_file,) = cache_dir.glob("*.pt")
    again = load_dataset(cache_file)
    assert torch.equal(again.train_images, ds.train_images) and torch.equal(again.test_labels, ds.test_labels)


def test_the_normalised_test_split_is_centred(prepared):
    _, test = build_loaders(prepared[0], batch_size=1000, seed=0)
    x = torch.cat([x for x, _ in test])  # stored order: class by class, so look at all of it
    assert x.shape == (10_000, 3, 32, 32)
    assert x.mean((0, 2, 3)).abs().max() < 0.05
    assert (x.std((0, 2, 3)) - 1.22).abs().max() < 0.1  # DESIGN's std constants are ~0.82 of the true std
