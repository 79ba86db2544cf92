"""Peak RSS of a training step, measured in a fresh process."""

import pytest
import torch

from tam.bench.rss import peak_rss_bytes
from tam.bench.suites import Case


def test_peak_rss_of_a_fresh_process_sees_the_step():
    case = Case("heads", "floor", heads=1, side=64, channels=64, batch=16)
    activation = 16 * 64 * 64 * 64 * 4  # 16 MiB: x, its gradient and y are each this size
    assert 2 * activation <= peak_rss_bytes(case) <= 40 * activation


def test_peak_rss_is_the_childs_own_not_its_parents():
    # Linux carries the parent's peak into the child's ru_maxrss across execve: a big parent hid the step.
    ballast = torch.ones(100 * 2**20)  # 400 MiB resident here, more than the child's whole step
    case = Case("heads", "floor", heads=1, side=64, channels=64, batch=16)
    assert peak_rss_bytes(case) >= 2 * 16 * 64 * 64 * 64 * 4
    del ballast


def test_peak_rss_subprocess_out_of_memory_is_a_memory_error():
    case = Case("heads", "floor", heads=1, side=64, channels=64, batch=16)
    with pytest.raises(MemoryError, match="out of memory"):
        peak_rss_bytes(case, memory_limit_bytes=1 << 20)
