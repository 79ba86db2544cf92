"""Shared test setup: the written-out references importable as `reference`, and the real CIFAR-10 path."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

CIFAR10_JPEG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(scope="session")
def cifar10_jpeg() -> Path:
    """Path of the shared real CIFAR-10 (JPEG folders in a .tar.gz); skips when this checkout lacks it."""
    if not CIFAR10_JPEG.is_file():
        pytest.skip(f"real CIFAR-10 not found at {CIFAR10_JPEG}")
    return CIFAR10_JPEG
