"""Shared test setup: one intra-op thread, the written-out references importable as `reference`, and the
real CIFAR-10 path."""

import sys
from pathlib import Path

import pytest
import torch

# Test tensors are small: with several OpenMP threads on a busy machine each op waits on the slowest thread,
# and a forward/backward that takes 0.1 s on one thread can take 10 s. Benchmarks, not tests, use the cores.
torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).parent))

from devices import on_test_device  # noqa: E402,F401  (the fixture of TAM_TEST_DEVICE)

CIFAR10_JPEG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(scope="session")
def cifar10_jpeg() -> Path:
    """Path of the shared real CIFAR-10 (JPEG folders in a .tar.gz); skips when this checkout lacks it."""
    if not CIFAR10_JPEG.is_file():
        pytest.skip(f"real CIFAR-10 not found at {CIFAR10_JPEG}")
    return CIFAR10_JPEG
