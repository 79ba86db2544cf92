"""Feed a model from uint8 tensors that live on the training device (the airbench / hlb-CIFAR10 technique).

The images are moved to the device once. Each batch is one ``index_select`` plus one batched augmentation
plus a fused normalisation, all on the device; the random numbers of a whole epoch are drawn up front on the
CPU from generators seeded by ``(seed, epoch)`` (the order) and ``(seed, epoch, rank)`` (the augmentation),
so the batches depend on nothing else: a run resumed at epoch ``e``, batch ``b`` sees exactly what a straight
run sees there, on any device.

**Sharding.** Every rank draws the same per-epoch permutation and takes every ``world_size``-th entry of it
(rank ``r`` takes positions ``r, r + W, r + 2W, ...``), so the ranks' shards are disjoint, and the global
batch ``k`` is the same set of images whatever the world size. When the dataset does not divide by the world
size, the permutation is **padded** by wrapping around to its start (as ``DistributedSampler`` does): every
image is seen each epoch, at most ``world_size - 1`` of them twice, and every rank has the same number of
batches. With ``drop_last=True`` the tail is dropped instead (both the world-size remainder and the last
partial batch).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence

import torch

from tam.data.augment import center_crop, crop_flip, resized_crop_flip, sample_crop_flip, sample_resized_crop
from tam.data.dataset import AUGMENTS, PreparedDataset

CIFAR_PADDING = 4
TINY_CROP_FRACTION = 56 / 64  # Tiny-ImageNet: 56-pixel crops of 64-pixel images


def _seed(*parts) -> int:
    """A 63-bit generator seed from a tuple, decorrelated by hashing (seed 1 epoch 0 != seed 0 epoch 1)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") & ((1 << 63) - 1)


class DeviceLoader:
    """Batches of normalised (and, for training, augmented) images built on the device from uint8 tensors.

    Args:
        images: uint8 ``[N, C, H, W]``; labels: integer ``[N]``. Moved to ``device`` once, here.
        batch_size: images per batch on this rank.
        train: shuffle each epoch and augment; else the stored order, no random augmentation.
        augment: ``"cifar"`` (train: zero-pad crop + flip), ``"tinyimagenet"`` (train: random resized
            crop to 7/8 of the side — 56 for 64 — + flip; test: centre crop to the same size) or ``"none"``.
        mean, std: per-channel constants on the 0–1 scale.
        seed: the run's seed; the order of epoch ``e`` depends only on ``(seed, e)``.
        drop_last: drop the last partial batch (and the world-size remainder). Default (None): False, so every
            image is used each epoch.
        rank, world_size: this process's shard (see the module docstring for the padding rule).
        channels_last: return batches in ``torch.channels_last`` memory format.
        crop_padding: the ``"cifar"`` crop's zero padding in pixels (4, the standard recipe; 0 leaves flips only).
        randomize: draw the random augmentations of a train loader; False keeps only the recipe's fixed part
            (Tiny-ImageNet's centre crop), so training without augmentation sees the test geometry.

    Iterating yields ``(x, y)``: x float32 ``[B, C, h, w]``, y int64 ``[B]``, on ``device``. The loader is
    resumable: ``state_dict()`` says which epoch and batch come next; iterating starts there, and a finished
    pass moves on to the next epoch (so forgetting ``set_epoch`` still reshuffles). ``set_epoch(e)`` jumps to
    the start of epoch ``e`` — or does nothing when the loader is already in epoch ``e``, so calling it after
    ``load_state_dict`` keeps the resumed position.

    Example (a prepared dataset gives ``ds.train_images``, ``ds.train_labels``, ``ds.augment``, ``ds.mean``
    and ``ds.std``; ``device="cuda"`` keeps them on the GPU):
        >>> images = torch.randint(0, 256, (100, 3, 32, 32), dtype=torch.uint8)
        >>> loader = DeviceLoader(images, torch.arange(100) % 10, batch_size=32, train=True, augment="cifar",
        ...                       mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), seed=0)
        >>> for epoch in range(2):
        ...     loader.set_epoch(epoch)
        ...     shapes = [tuple(x.shape) for x, y in loader]
        >>> shapes  # 100 images: three full batches and the remainder
        [(32, 3, 32, 32), (32, 3, 32, 32), (32, 3, 32, 32), (4, 3, 32, 32)]
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        train: bool,
        augment: str | None,
        mean: Sequence[float],
        std: Sequence[float],
        device: str | torch.device = "cpu",
        seed: int = 0,
        drop_last: bool | None = None,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        crop_padding: int = CIFAR_PADDING,
        randomize: bool = True,
    ):
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            raise TypeError(f"images must be a uint8 tensor [N, C, H, W], got {getattr(images, 'dtype', type(images))} "
                            f"{tuple(getattr(images, 'shape', ()))}")
        if labels.dim() != 1 or len(labels) != len(images):
            raise ValueError(f"labels must be [N] with N = {len(images)} images, got {tuple(labels.shape)}")
        if len(images) == 0:
            raise ValueError("images is empty")
        augment = "none" if augment is None else augment
        if augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTS)} (or None), got {augment!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int) and 0 <= rank < world_size):
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank!r}, world_size={world_size!r}")
        if not isinstance(crop_padding, int) or crop_padding < 0:
            raise ValueError(f"crop_padding must be a non-negative int, got {crop_padding!r}")
        channels = images.shape[1]
        if len(mean) != channels or len(std) != channels or min(std) <= 0:
            raise ValueError(f"mean and std need {channels} values (std > 0), got mean={mean!r}, std={std!r}")
        self.device = torch.device(device)
        self.images = images.to(self.device).contiguous()
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size = batch_size
        self.train = bool(train)
        self.augment = augment
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.rank, self.world_size = rank, world_size
        self.channels_last = channels_last
        self.crop_padding = crop_padding
        self.randomize = bool(randomize)
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)  # x_norm = x_uint8 * scale + shift
        self._shift = -mean_t / std_t
        self.crop_size = round(images.shape[2] * TINY_CROP_FRACTION) if augment == "tinyimagenet" else None
        n = len(images)
        self.num_samples = n // world_size if self.drop_last else math.ceil(n / world_size)  # per rank and epoch
        self._batches = self.num_samples // batch_size if self.drop_last else math.ceil(self.num_samples / batch_size)
        if self._batches == 0:
            raise ValueError(f"drop_last with batch_size {batch_size} leaves no batch of {self.num_samples} images per rank")
        self.epoch = 0
        self._start = 0  # where the next iteration starts (set by load_state_dict)
        self._next = 0  # the next batch of the current epoch, for state_dict

    def __len__(self) -> int:
        return self._batches

    @property
    def dataset_size(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch = int(epoch)
            self._start = self._next = 0

    def state_dict(self) -> dict[str, int]:
        return {
            "epoch": self.epoch,
            "batch": self._next,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "dataset_size": self.dataset_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at ``state["epoch"]``, batch ``state["batch"]``, with the saved seed."""
        for key in ("batch_size", "world_size", "dataset_size"):
            if key in state and int(state[key]) != getattr(self, key):
                raise ValueError(
                    f"loader state is for {key}={state[key]}, this loader has {getattr(self, key)}: "
                    "cannot resume the same batches"
                )
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self._start = self._next = min(int(state["batch"]), self._batches)

    # -- the epoch plan and the batches ---------------------------------------------------------------------

    def indices(self, epoch: int) -> torch.Tensor:
        """The dataset indices this rank visits in ``epoch``, in order (CPU int64)."""
        n = self.dataset_size
        if self.train:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(_seed("order", self.seed, epoch)))
        else:
            order = torch.arange(n)
        total = self.num_samples * self.world_size
        if total > n:  # pad by wrapping around
            order = order.repeat(math.ceil(total / n))
        shard = order[:total][self.rank :: self.world_size]
        return shard[: self._batches * self.batch_size] if self.drop_last else shard

    def _augment_params(self, epoch: int, count: int) -> torch.Tensor | None:
        if not (self.train and self.randomize) or self.augment == "none":
            return None
        generator = torch.Generator().manual_seed(_seed("augment", self.seed, epoch, self.rank))
        if self.augment == "cifar":
            params = sample_crop_flip(count, self.crop_padding, generator)
        else:
            params = sample_resized_crop(count, self.images.shape[2], self.images.shape[3], generator)
        return params.to(self.device)

    def _batch(self, index: torch.Tensor, params: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images.index_select(0, index)
        if self.augment == "cifar" and params is not None:
            x = crop_flip(x, params, self.crop_padding)
        elif self.augment == "tinyimagenet":
            x = resized_crop_flip(x, params, self.crop_size) if params is not None else center_crop(x, self.crop_size)
        x = x.to(torch.float32) if x.dtype != torch.float32 else x
        x = torch.addcmul(self._shift, x, self._scale)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels.index_select(0, index)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, start = self.epoch, self._start
        self._start = 0
        order = self.indices(epoch)
        params = self._augment_params(epoch, len(order))
        order = order.to(self.device)
        size = self.batch_size
        for b in range(start, self._batches):
            self._next = b + 1
            window = slice(b * size, (b + 1) * size)
            yield self._batch(order[window], None if params is None else params[window])
        self.epoch, self._next = epoch + 1, 0


def build_loaders(
    ds: PreparedDataset,
    *,
    batch_size: int,
    test_batch_size: int | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    channels_last: bool = False,
    drop_last: bool = False,
) -> tuple[DeviceLoader, DeviceLoader]:
    """``(train_loader, test_loader)`` for ``ds`` with its own recipe (augment, mean, std).

    The train loader shuffles and augments; the test loader keeps the stored order (Tiny-ImageNet: centre
    crop). ``drop_last`` applies to the train loader only; ``test_batch_size`` defaults to ``batch_size``.
    """
    common = dict(augment=ds.augment, mean=ds.mean, std=ds.std, device=device, seed=seed, rank=rank,
                  world_size=world_size, channels_last=channels_last)
    train = DeviceLoader(ds.train_images, ds.train_labels, batch_size=batch_size, train=True, drop_last=drop_last, **common)
    test = DeviceLoader(ds.test_images, ds.test_labels, batch_size=test_batch_size or batch_size, train=False, **common)
    return train, test
