"""The device the layer, model and loader tests run on: ``TAM_TEST_DEVICE`` (default ``cpu``), as timm's tests
read ``TORCH_DEVICE``.

    TAM_TEST_DEVICE=cuda python -m pytest -q tests/layers    # every layer test on the GPU
    TAM_TEST_DEVICE=meta python -m pytest -q tests/layers    # shapes, dispatch and errors without data

Tests under ``tests/layers`` and ``tests/models`` run with it as torch's default device (their tensors and
modules are created there); a test that cannot mean anything there is skipped with the reason, through
:func:`skip_on`.
"""

import contextlib
import os

import pytest
import torch

DEVICE = torch.device(os.environ.get("TAM_TEST_DEVICE", "cpu"))

NO_VALUES = "meta tensors carry shapes, not values: nothing to compare"


def skip_on(*device_types: str, reason: str):
    """Mark a test (or, as ``pytestmark``, a module) skipped where the test device is one of ``device_types``."""
    return pytest.mark.skipif(DEVICE.type in device_types, reason=f"TAM_TEST_DEVICE={DEVICE}: {reason}")


def only_on(*device_types: str, reason: str):
    """Mark a test skipped unless the test device is one of ``device_types``."""
    return pytest.mark.skipif(DEVICE.type not in device_types, reason=f"TAM_TEST_DEVICE={DEVICE}: {reason}")


needs_values = skip_on("meta", reason=NO_VALUES)


@contextlib.contextmanager
def without_default_device():
    """Lift the default device for a block: torch.compile does not trace through its function mode (dynamo
    refuses ``Tensor.unflatten`` under it with "Attempted to call a super() attribute")."""
    if DEVICE.type == "cpu":  # no default device was set
        yield
        return
    torch.set_default_device(None)
    try:
        yield
    finally:
        torch.set_default_device(DEVICE)


@pytest.fixture
def on_test_device():
    """Make :data:`DEVICE` torch's default device for the test (nothing to do for ``cpu``)."""
    if DEVICE.type == "cpu":
        yield DEVICE
        return
    torch.set_default_device(DEVICE)
    try:
        yield DEVICE
    finally:
        torch.set_default_device(None)
