"""Every test here runs on the test device (``TAM_TEST_DEVICE``, see ``tests/devices.py``)."""

import pytest


@pytest.fixture(autouse=True)
def _test_device(on_test_device):
    return on_test_device
