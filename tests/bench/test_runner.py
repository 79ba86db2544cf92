"""The runner on plain torch workloads: a full record, and running out of memory recorded, not raised."""

import sys

import pytest
import torch
from torch import nn

from tam.bench.runner import Settings, measure_case, run_cases
from tam.bench.suites import Case
from tam.bench.workload import Workload

FAST = Settings(budget_s=0.01, min_reps=2, max_reps=3, rss=False)
CASE = Case("heads", "floor", heads=1, side=8, channels=4, batch=2)


def conv_workload(case, device):
    conv = nn.Conv2d(case.channels, case.channels, 1, bias=False).to(device)
    x = torch.randn(case.batch, case.channels, case.side, case.side, device=device, requires_grad=True)
    return Workload(conv, (x,), torch.sum)


def test_record_of_a_plain_convolution():
    record = measure_case(CASE, "cpu", FAST, build=conv_workload)
    assert record["status"] == "ok" and record["error"] is None
    assert record["params"] == 4 * 4
    assert record["flops"] == 2 * (2 * 8 * 8) * 4 * 4
    assert record["flops_backward"] == 2 * record["flops"]  # grad of the input and of the weight
    assert record["saved_mb"] * 2**20 == 2 * 4 * 8 * 8 * 4  # the input; the weight is a parameter
    assert record["memory_mb"] == record["saved_mb"]
    assert 2 <= record["time_reps"] <= 3 and record["time_ms"] > 0 and record["forward_ms"] > 0
    assert record["kind"] == "floor" and record["device"] == "cpu" and record["side"] == 8


def test_oom_in_backward_is_recorded_and_earlier_numbers_kept():
    def oom_on_backward(case, device):
        workload = conv_workload(case, device)

        def loss(out):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB")

        return Workload(workload.module, workload.inputs, loss)

    record = measure_case(CASE, "cpu", FAST, build=oom_on_backward)
    assert record["status"] == "oom"
    assert "forward+backward" in record["error"] and "64.00 GiB" in record["error"]
    assert record["forward_ms"] > 0 and record["params"] == 16  # measured before the failure
    assert record["time_ms"] is None and record["flops"] is None and record["memory_mb"] is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the memory limit is enforced on Linux")
def test_real_cpu_allocation_failure_is_recorded():
    def huge(case, device):
        return torch.empty(1 << 32, dtype=torch.uint8)  # 4 GiB against a 64 MiB limit

    settings = Settings(budget_s=0.01, min_reps=1, max_reps=1, memory_limit_bytes=64 << 20, rss=False)
    record = measure_case(CASE, "cpu", settings, build=huge)
    assert record["status"] == "oom" and "build" in record["error"]
    assert record["time_ms"] is None and record["memory_mb"] is None


def test_other_errors_are_raised():
    def broken(case, device):
        raise ValueError("heads=3 must divide embed_channels")

    with pytest.raises(ValueError, match="heads=3"):
        measure_case(CASE, "cpu", FAST, build=broken)


def test_run_cases_records_the_environment():
    seen = []
    cases = [Case("heads", "floor", heads=1, side=4, channels=4, batch=1)] * 2
    records = run_cases(cases, "cpu", FAST, progress=False, on_record=lambda so_far: seen.append(len(so_far)))
    assert len(records) == 2 and seen == [1, 2]
    record = records[0]
    assert record["torch"] == torch.__version__ and record["threads"] == torch.get_num_threads()
    assert record["device_name"] and record["date"]


def test_rounds_keep_the_median_round_whole():
    times = iter([3.0, 1.0, 2.0])  # forward+backward medians of rounds 1, 2, 3

    def fake_measure(case, device, settings, build=None):
        time_ms = next(times)
        return {"time_ms": time_ms, "time_q1_ms": time_ms - 0.5, "forward_ms": time_ms / 2,
                "rss_mb": 7.0 if settings.rss else None}

    seen = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("tam.bench.runner.measure_case", fake_measure)
        settings = Settings(budget_s=0.01, rss=True)
        [record] = run_cases([CASE], "cpu", settings, rounds=3, progress=False,
                             on_record=lambda so_far: seen.append([r["rounds"] for r in so_far]))
    assert record["time_ms"] == 2.0 and record["time_q1_ms"] == 1.5 and record["forward_ms"] == 1.0
    assert record["time_ms_rounds"] == [3.0, 1.0, 2.0] and record["forward_ms_rounds"] == [1.5, 0.5, 1.0]
    assert record["rss_mb"] == 7.0  # measured in the first round only
    assert record["rounds"] == 3 and seen == [[1], [2], [3]]


def test_rounds_must_be_positive():
    with pytest.raises(ValueError, match="rounds"):
        run_cases([CASE], "cpu", FAST, rounds=0, progress=False)
