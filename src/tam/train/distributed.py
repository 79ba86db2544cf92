"""Process-group setup for ``torchrun``: one process per device, nccl on CUDA, gloo on CPU.

Outside ``torchrun`` (no ``WORLD_SIZE`` in the environment) everything degrades to a single process.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist

from tam.device import resolve_device


@dataclasses.dataclass(frozen=True)
class Context:
    """Where this process sits: its rank among ``world_size`` and the device it trains on."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files and prints."""
        return self.rank == 0


def setup(device_name: str) -> Context:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(device_name, option="device", local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(rank=rank, world_size=world_size, device=device)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def sum_across_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks (in place; a no-op in a single process)."""
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor
