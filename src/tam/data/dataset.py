"""The prepared dataset: uint8 image tensors, labels, class names and the facts needed to train on them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

# DESIGN §4: normalisation constants.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Label order of the official releases (CIFAR-100's fine names are alphabetical, as in its `meta` file).
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)

AUGMENTS = ("cifar", "tinyimagenet", "none")


@dataclass(eq=False)
class PreparedDataset:
    """A dataset ready for :class:`~tam.data.DeviceLoader`: everything in memory (or memory-mapped) as tensors.

    Attributes:
        name: ``"cifar10"``, ``"cifar100"``, ``"tinyimagenet"`` or ``"imagefolder"`` (an image folder whose
            classes and size match CIFAR-10/100 or Tiny-ImageNet takes that name, so it gets that recipe).
        classes: class names in label order.
        train_images, test_images: uint8 ``[N, 3, H, W]`` CPU tensors.
        train_labels, test_labels: int64 ``[N]``.
        mean, std: per-channel normalisation constants on the 0–1 scale (DESIGN §4 for the known datasets,
            the measured train statistics otherwise).
        augment: the training recipe, ``"cifar"`` (pad-4 crop + flip) or ``"tinyimagenet"`` (random resized
            crop + flip; centre crop for test).
        source_format: how the source stored it: ``"cifar-python"``, ``"imagefolder"``, ``"tinyimagenet"``.
        source, fingerprint: the path it was prepared from and a digest of that source (see ``cache``).
        test_split: the name of the held-out split in the source (``"test"`` or ``"val"``).
        pixel_mean, pixel_std: per-channel statistics of the train images, measured at preparation.
        coarse_classes, train_coarse_labels, test_coarse_labels: CIFAR-100's 20 superclasses, else None.
    """

    name: str
    classes: list[str]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    augment: str
    source_format: str = ""
    source: str = ""
    fingerprint: str = ""
    test_split: str = "test"
    pixel_mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pixel_std: tuple[float, float, float] = (0.0, 0.0, 0.0)
    coarse_classes: list[str] | None = None
    train_coarse_labels: torch.Tensor | None = field(default=None, repr=False)
    test_coarse_labels: torch.Tensor | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(3, H, W)`` of the stored images."""
        return tuple(self.train_images.shape[1:])

    def coarse(self) -> PreparedDataset:
        """The same images labelled with CIFAR-100's 20 coarse classes (shares the image tensors)."""
        if self.coarse_classes is None:
            raise ValueError(f"dataset {self.name!r} has no coarse labels (only CIFAR-100 does)")
        return dataclasses.replace(
            self,
            name=f"{self.name}-coarse",
            classes=list(self.coarse_classes),
            train_labels=self.train_coarse_labels,
            test_labels=self.test_coarse_labels,
            coarse_classes=None,
            train_coarse_labels=None,
            test_coarse_labels=None,
        )

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return (
            f"PreparedDataset({self.name!r}, train={len(self.train_labels)}, {self.test_split}={len(self.test_labels)}, "
            f"classes={self.num_classes}, image={c}x{h}x{w}, augment={self.augment!r})"
        )


def pixel_statistics(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (0–1 scale, population) of uint8 ``[N, C, H, W]`` images, exactly, from a
    256-bin histogram per channel."""
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).to(torch.float64)
        total = counts.sum().clamp_min(1)
        mean = (counts * values).sum() / total
        var = (counts * (values - mean).square()).sum() / total
        means.append(round(mean.item() / 255.0, 6))
        stds.append(round(var.sqrt().item() / 255.0, 6))
    return tuple(means), tuple(stds)
