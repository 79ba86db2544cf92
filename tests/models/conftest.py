"""Model tests run on one intra-op thread.

Their tensors are tiny: with several OpenMP threads on a loaded machine, each op waits on the slowest
thread and a forward/backward that takes 0.1 s on one thread can take 10 s.
"""

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
