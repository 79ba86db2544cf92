"""DeviceLoader: seeded order, epoch coverage, disjoint shards, exact resume, and augmentations that equal
their per-image definitions."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from devices import DEVICE, skip_on
from tam.data import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, DeviceLoader, PreparedDataset, build_loaders
from tam.data.augment import crop_flip, resized_crop_flip, sample_crop_flip, sample_resized_crop

N = 103  # not a multiple of the batch size nor of the world size

pytestmark = skip_on("meta", reason="meta tensors carry no pixels to index, augment or compare")


class CheckedLoader(DeviceLoader):
    """A loader on the test device (``TAM_TEST_DEVICE``) whose batches are checked to be there, then handed
    to the test on the CPU, where the expected values are built."""

    def __iter__(self):
        for x, y in super().__iter__():
            assert x.device == y.device == self.device == DEVICE
            yield x.cpu(), y.cpu()


def images(n=N, size=32):
    """Image i has every pixel of channel 0 equal to i % 256, so a batch says which images it holds."""
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    x[:, 0] = (torch.arange(n) % 256).to(torch.uint8)[:, None, None]
    return x, torch.arange(n) % 10


def loader(n=N, **kw):
    """A loader whose labels are the image indices, so the labels of a pass say which images it visited."""
    x, _ = images(n, kw.pop("size", 32))
    options = dict(batch_size=16, train=True, augment="cifar", mean=CIFAR_MEAN, std=CIFAR_STD, seed=0)
    return CheckedLoader(x, torch.arange(n), device=DEVICE, **{**options, **kw})


def epoch_labels(ld, epoch=None):
    if epoch is not None:
        ld.set_epoch(epoch)
    return torch.cat([y for _, y in ld])


def test_batches_shapes_types_and_normalisation():
    ld = loader(augment="none", train=False)
    x, y = next(iter(ld))
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (16, 3, 32, 32)
    raw = images()[0][:16].float() / 255
    expected = (raw - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)
    assert len(ld) == 7 and sum(len(y) for _, y in ld) == N


def test_same_seed_same_batches_other_seed_other_order():
    a, b, c = loader(seed=5), loader(seed=5), loader(seed=6)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(epoch_labels(loader(seed=5)), epoch_labels(c))


def test_each_epoch_is_a_new_order_covering_every_image_once():
    ld = loader()
    orders = [epoch_labels(ld, epoch) for epoch in range(3)]
    for order in orders:
        assert sorted(order.tolist()) == list(range(N))
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])


def test_order_depends_only_on_seed_and_epoch():
    straight = loader()
    for epoch in range(3):
        expected = epoch_labels(straight, epoch)
    fresh = loader()
    fresh.set_epoch(2)
    assert torch.equal(epoch_labels(fresh), expected)


def test_without_set_epoch_a_finished_pass_moves_to_the_next_epoch():
    ld = loader()
    first, second = epoch_labels(ld), epoch_labels(ld)
    assert ld.epoch == 2 and not torch.equal(first, second)
    assert torch.equal(second, epoch_labels(loader(), 1))


def test_test_loader_keeps_the_stored_order_and_never_augments():
    ld = loader(train=False)
    assert torch.equal(epoch_labels(ld, 0), torch.arange(N)) and torch.equal(epoch_labels(ld, 1), torch.arange(N))
    x0 = torch.cat([x for x, _ in ld])
    ld.set_epoch(7)
    assert torch.equal(x0, torch.cat([x for x, _ in ld]))


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_are_disjoint_cover_the_epoch_and_have_equal_length(world_size):
    for n in (N, 102):
        shards = [epoch_labels(loader(n=n, rank=r, world_size=world_size), 4) for r in range(world_size)]
        lengths = {len(s) for s in shards}
        assert len(lengths) == 1 and lengths == {-(-n // world_size)}
        assert len({len(loader(n=n, rank=r, world_size=world_size)) for r in range(world_size)}) == 1
        together = torch.cat(shards).tolist()
        assert set(together) == set(range(n))  # covers the epoch
        padded = len(together) - n
        assert padded == (-n) % world_size  # only the documented wrap-around padding repeats
        if padded == 0:
            assert len(set(together)) == n  # disjoint


def test_shards_interleave_the_single_process_order():
    """Global batch k is the same set of images whatever the world size (rank r takes every W-th entry)."""
    single = epoch_labels(loader(n=96, batch_size=32), 1)
    shards = [epoch_labels(loader(n=96, batch_size=16, rank=r, world_size=2), 1) for r in range(2)]
    for k in range(3):
        together = torch.cat([shards[0][16 * k: 16 * (k + 1)], shards[1][16 * k: 16 * (k + 1)]])
        assert sorted(together.tolist()) == sorted(single[32 * k: 32 * (k + 1)].tolist())


def test_drop_last_drops_the_partial_batch_and_the_remainder():
    ld = loader(drop_last=True, rank=1, world_size=2)
    assert len(ld) == 3  # 103 // 2 = 51 per rank -> 3 full batches of 16
    shards = [epoch_labels(loader(drop_last=True, rank=r, world_size=2), 0) for r in range(2)]
    assert all(len(s) == 48 for s in shards) and not set(shards[0].tolist()) & set(shards[1].tolist())


def test_augmentation_depends_on_seed_epoch_and_rank_only():
    """All images identical, so batches differ only by their augmentation."""
    same = images(1)[0].expand(64, -1, -1, -1).contiguous()

    def first_batch(epoch=0, **kw):
        ld = CheckedLoader(same, torch.zeros(64, dtype=torch.int64), batch_size=64, train=True, augment="cifar",
                           mean=CIFAR_MEAN, std=CIFAR_STD, device=DEVICE, **kw)
        ld.set_epoch(epoch)
        return next(iter(ld))[0]

    reference = first_batch(seed=1)
    assert torch.equal(reference, first_batch(seed=1))
    assert not torch.equal(reference, first_batch(seed=2))
    assert not torch.equal(reference, first_batch(epoch=1, seed=1))
    rank0, rank1 = (first_batch(seed=1, rank=r, world_size=2) for r in (0, 1))
    assert not torch.equal(rank0, rank1)


@pytest.mark.parametrize("augment, size", [("cifar", 32), ("tinyimagenet", 64)])
def test_resume_mid_epoch_reproduces_the_straight_run(augment, size):
    options = dict(augment=augment, size=size, seed=3, rank=1, world_size=2, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    straight = loader(**options)
    batches, saved = [], None
    for epoch in range(3):
        straight.set_epoch(epoch)
        for i, batch in enumerate(straight):
            batches.append(batch)
            if epoch == 1 and i == 1:
                saved = straight.state_dict()
    assert saved == {"epoch": 1, "batch": 2, "seed": 3, "batch_size": 16, "world_size": 2, "dataset_size": N}
    resumed = loader(**{**options, "seed": 99})  # the saved seed wins
    resumed.load_state_dict(saved)
    replay = []
    for epoch in range(1, 3):
        resumed.set_epoch(epoch)  # what a training loop does after loading: must keep the position
        replay += list(resumed)
    tail = batches[len(straight) + 2:]
    assert len(replay) == len(tail)
    for (xa, ya), (xb, yb) in zip(replay, tail):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert resumed.state_dict()["epoch"] == 3


def test_load_state_dict_refuses_a_different_setup():
    state = loader().state_dict()
    with pytest.raises(ValueError, match="batch_size=16"):
        loader(batch_size=8).load_state_dict(state)


def test_breaking_off_an_epoch_and_iterating_again_restarts_it():
    ld = loader()
    first = next(iter(ld))[1]
    assert ld.state_dict()["batch"] == 1
    assert torch.equal(next(iter(ld))[1], first)


def test_channels_last():
    x, _ = next(iter(loader(channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)
    y, _ = next(iter(loader()))
    assert torch.equal(x, y)


@pytest.mark.parametrize("padding", [4, 2, 0])
def test_crop_flip_equals_the_per_image_definition(padding):
    x, _ = images(40)
    params = sample_crop_flip(40, padding, torch.Generator().manual_seed(1))
    out = crop_flip(x, params, padding)
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    for i, (dx, dy, flip) in enumerate(params.tolist()):
        ref = padded[i, :, dy: dy + 32, dx: dx + 32]
        assert np.array_equal(out[i].numpy(), ref[:, :, ::-1] if flip else ref)
    assert set(params[:, 2].tolist()) == {0, 1}
    assert params[:, :2].min() == 0 and params[:, :2].max() == 2 * padding


def test_loader_crop_padding_bounds_the_shift():
    """Without padding the train batches hold each image whole, either as stored or mirrored."""
    x, _ = images()
    ld = loader(crop_padding=0, augment="cifar", mean=(0.0,) * 3, std=(1 / 255,) * 3)
    for batch, index in ld:
        stored = x[index].float()
        assert all(torch.equal(b, s) or torch.equal(b, s.flip(-1)) for b, s in zip(batch, stored))
    assert ld.crop_padding == 0 and loader().crop_padding == 4


def test_resized_crop_equals_crop_then_bilinear_resize():
    x = torch.randint(0, 256, (30, 3, 64, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    params = sample_resized_crop(30, 64, 48, torch.Generator().manual_seed(3))
    out = resized_crop_flip(x, params, 56)
    for i, (top, left, h, w, flip) in enumerate(params.long().tolist()):
        assert 0 <= top and top + h <= 64 and 0 <= left and left + w <= 48
        crop = x[i: i + 1, :, top: top + h, left: left + w].float()
        ref = F.interpolate(crop, size=(56, 56), mode="bilinear", align_corners=False)[0]
        torch.testing.assert_close(out[i], ref.flip(-1) if flip else ref, rtol=0, atol=2e-3)


def test_resized_crop_statistics_follow_torchvision_rule():
    params = sample_resized_crop(20000, 64, 64, torch.Generator().manual_seed(4))
    area = params[:, 2] * params[:, 3] / 64 ** 2
    ratio = params[:, 3] / params[:, 2]
    assert area.min() >= 0.07 and area.max() <= 1.0 and 0.2 < area.mean() < 0.7
    assert ratio.min() > 0.7 and ratio.max() < 1.45
    assert 0.45 < params[:, 4].mean() < 0.55


def test_tinyimagenet_recipe_crops_to_56():
    train = loader(augment="tinyimagenet", size=64, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    test = loader(augment="tinyimagenet", size=64, train=False, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert next(iter(train))[0].shape == (16, 3, 56, 56)
    x, _ = next(iter(test))
    raw = images(N, 64)[0][:16, :, 4:60, 4:60].float() / 255
    expected = (raw - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)  # centre crop, no randomness


@pytest.mark.parametrize("augment, size, crop", [("tinyimagenet", 64, slice(4, 60)), ("cifar", 32, slice(0, 32))])
def test_train_loader_without_randomness_keeps_the_test_geometry(augment, size, crop):
    """``randomize=False`` (``tam train --no-augment``) shuffles but augments nothing at random: each batch
    holds the test loader's view of its images (Tiny-ImageNet: the centre crop, not the whole 64² image)."""
    x, _ = images(N, size)
    ld = loader(augment=augment, size=size, randomize=False, mean=(0.0,) * 3, std=(1 / 255,) * 3)
    for batch, index in ld:
        assert torch.equal(batch, x[index][:, :, crop, crop].float())


def test_build_loaders_uses_the_dataset_recipe():
    x, y = images(50)
    ds = PreparedDataset(name="cifar10", classes=[str(i) for i in range(10)], train_images=x, train_labels=y,
                         test_images=x[:20], test_labels=y[:20], mean=CIFAR_MEAN, std=CIFAR_STD, augment="cifar")
    train, test = build_loaders(ds, batch_size=8, test_batch_size=20, seed=1)
    assert (train.train, test.train, train.augment, len(train), len(test)) == (True, False, "cifar", 7, 1)


def test_bad_arguments_say_what_is_wrong():
    x, y = images(8)
    base = dict(batch_size=4, train=True, augment="cifar", mean=CIFAR_MEAN, std=CIFAR_STD)
    with pytest.raises(ValueError, match="augment must be one of"):
        DeviceLoader(x, y, **{**base, "augment": "autoaugment"})
    with pytest.raises(ValueError, match="rank"):
        DeviceLoader(x, y, **base, rank=2, world_size=2)
    with pytest.raises(TypeError, match="uint8"):
        DeviceLoader(x.float(), y, **base)
    with pytest.raises(ValueError, match="labels"):
        DeviceLoader(x, y[:3], **base)
    with pytest.raises(ValueError, match="leaves no batch"):
        DeviceLoader(x, y, **{**base, "batch_size": 16}, drop_last=True)
    with pytest.raises(ValueError, match="crop_padding"):
        DeviceLoader(x, y, **base, crop_padding=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_equal_cpu_batches():
    cpu, gpu = loader(seed=2), loader(seed=2, device="cuda")
    assert gpu.images.is_cuda
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        assert xg.is_cuda and torch.equal(yc, yg.cpu())
        torch.testing.assert_close(xc, xg.cpu())
