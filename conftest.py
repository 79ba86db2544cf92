"""Names every docstring example of ``src/tam`` may use without importing them, as in PyTorch's docs."""

import pytest
import torch

import tam


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace.update(torch=torch, tam=tam)
