"""Datasets for tam: CIFAR-10/100 and Tiny-ImageNet from the formats users have, prepared once, fed from tensors.

Three steps, each usable alone::

    from tam.data import load_dataset, build_loaders
    ds = load_dataset("../shared/data/cifar10-jpeg.tar.gz")   # or a prepared cache file
    train_loader, test_loader = build_loaders(ds, batch_size=128, device="cuda", seed=0)
    for epoch in range(300):
        train_loader.set_epoch(epoch)
        for x, y in train_loader: ...

1. **Sources** (:mod:`tam.data.sources`): a folder or archive (tar, tar.gz/bz2/xz, zip) of the official
   CIFAR-10 or CIFAR-100 python release, the official Tiny-ImageNet folder, or an image-folder tree
   ``train/<class>/*`` + ``test/<class>/*`` (or ``val/``). Archives are read in memory, never extracted; the
   CIFAR pickles go through a restricted unpickler. Broken input is a one-line :class:`tam.errors.UserError`
   naming the file and the problem.
2. **Cache** (:mod:`tam.data.cache`): ``tam data prepare SOURCE --out FILE`` or, automatically,
   :func:`load_dataset` turns a source into one ``torch.save`` file of uint8 tensors + plain data, loaded
   memory-mapped with ``weights_only=True``. Automatic caches live in ``$TAM_CACHE_DIR`` (else
   ``~/.cache/tam``), named after the source's fingerprint.
3. **Loader** (:mod:`tam.data.loader`): :class:`DeviceLoader` keeps the uint8 tensors on the training
   device and builds each batch there (seeded shuffle, batched augmentation, normalisation, optional
   channels_last, sharding over ranks); :func:`build_loaders` makes the train/test pair from a dataset.

The command line: ``tam data prepare | info | download | bench``.
"""

from tam.data.cache import default_cache_dir, fingerprint, load_cache, load_dataset, prepare, save_cache
from tam.data.dataset import (
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PreparedDataset,
)
from tam.data.loader import DeviceLoader, build_loaders
from tam.data.sources import read_source

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR100_CLASSES",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DeviceLoader",
    "PreparedDataset",
    "build_loaders",
    "default_cache_dir",
    "fingerprint",
    "load_cache",
    "load_dataset",
    "prepare",
    "read_source",
    "save_cache",
]
