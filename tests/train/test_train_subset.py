"""--limit-train/--limit-test: a fixed class-balanced subset."""

import torch

from tam.train.subset import balanced_subset


def test_balanced_fixed_and_unique():
    labels = torch.arange(10).repeat_interleave(torch.tensor([50, 5, 50, 50, 50, 50, 50, 50, 50, 50]))
    pick = balanced_subset(labels, 95)
    assert len(pick) == len(set(pick.tolist())) == 95
    counts = torch.bincount(labels[pick], minlength=10)
    assert counts[1] == 5 and counts[[0, 2, 3, 4, 5, 6, 7, 8, 9]].tolist() == [10] * 9
    assert torch.equal(pick, balanced_subset(labels, 95))
    assert torch.equal(pick, pick.sort().values)
    assert set(balanced_subset(labels, 20).tolist()) <= set(pick.tolist())


def test_no_limit_keeps_everything():
    labels = torch.tensor([0, 1, 1])
    assert balanced_subset(labels, None).tolist() == [0, 1, 2]
    assert balanced_subset(labels, 7).tolist() == [0, 1, 2]
