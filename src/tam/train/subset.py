"""``--limit-train`` / ``--limit-test``: a fixed, class-balanced subset of a split."""

from __future__ import annotations

import torch


def balanced_subset(labels: torch.Tensor, limit: int | None) -> torch.Tensor:
    """Sorted indices of ``limit`` samples taking classes in turn (one of each class, then a second of each ...),
    each class's samples in a fixed shuffled order (seed 0, independent of the training seed, so every run with
    the same limit sees the same images). ``None`` or a limit beyond the split keeps everything."""
    if limit is None or limit >= len(labels):
        return torch.arange(len(labels))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    shuffled = labels[order]
    by_class = torch.argsort(shuffled, stable=True)
    counts = torch.bincount(shuffled)
    class_start = torch.cumsum(counts, 0) - counts
    rank_in_class = torch.empty_like(by_class)
    rank_in_class[by_class] = torch.arange(len(by_class)) - class_start[shuffled[by_class]]
    turn = rank_in_class * len(counts) + shuffled
    return order[torch.argsort(turn)[:limit]].sort().values
