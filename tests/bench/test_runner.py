"""The runner on plain torch workloads: a full record, and running out of memory recorded, not raised."""

import sys
from dataclasses import replace

import pytest
import torch
from torch import nn

from tam.bench.runner import Settings, measure_case, measure_pair, run_cases
from tam.bench.suites import Case
from tam.bench.workload import Workload

FAST = Settings(budget_s=0.01, min_reps=2, max_reps=3, pair_min_reps=3, rss=False)
CASE = Case("heads", "floor", heads=1, side=8, channels=4, batch=2)
FLOOR = Case("fastpath", "floor", heads=1, side=4, channels=4, batch=1)
TAM = replace(FLOOR, kind="tam")  # compared with FLOOR
ALONE = Case("resolution", "tam", heads=1, side=4, channels=4, batch=1)  # compared with nothing
PAIRED = ("paired_reference", "paired_ratio", "paired_ratio_q1", "paired_ratio_q3", "paired_reps", "paired_error")


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
    assert record["form"] is None and record["form_reason"] is None  # no layer with two forms


def test_record_names_the_form_the_layer_ran():
    from tam.layers import force_impl

    record = measure_case(ALONE, "cpu", FAST)
    assert record["form"] == "gram" and record["form_reason"].startswith("least cost")
    with force_impl("transposed"):
        record = measure_case(ALONE, "cpu", FAST)
    assert (record["form"], record["form_reason"]) == ("transposed", "forced by tam.force_impl('transposed')")


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

    settings = Settings(budget_s=0.01, min_reps=1, max_reps=1, pair_min_reps=1, memory_limit_bytes=64 << 20, rss=False)
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
    assert records[1]["matmul_gflops"] == record["matmul_gflops"] > 0  # one peak for the whole run
    # the run's span covers every measurement (ISO dates in UTC compare as strings)
    assert all(r["run_started"] <= r["date"] <= r["run_finished"] for r in records)
    assert record["under_load"] in (True, False) and "load_avg_1m" in record


def test_the_peak_matmul_rate_is_the_fastest_taking_of_the_run(monkeypatch):
    rates = iter([2e9, 5e9, 3e9])  # before round 1, after round 1, after round 2
    monkeypatch.setattr("tam.bench.runner.matmul_rate", lambda *args, **kwargs: next(rates))
    seen = []
    records = run_cases([CASE], "cpu", FAST, rounds=2, pairs=False, progress=False,
                        on_record=lambda so_far: seen.append(so_far[0]["matmul_gflops"]))
    assert seen == [2.0, 5.0] and records[0]["matmul_gflops"] == 5.0


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


def logging_build(built, fail=lambda case, count: False):
    """A build of convolutions that appends ``(case, modes)`` to ``built`` and raises OOM where ``fail``.

    The module comes in eval mode (the runner must switch it to train mode), and a forward hook appends its
    ``training`` flag to ``modes`` at every call. ``fail(case, builds so far)`` decides the OOM.
    """

    def build(case, device):
        if fail(case, len(built)):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        workload = conv_workload(case, device)
        modes = []
        workload.module.register_forward_hook(lambda module, args, out: modes.append(module.training))
        built.append((case, modes))
        workload.module.eval()
        return workload

    return build


def test_pairs_attach_to_the_records_that_have_a_reference():
    built, seen = [], []
    records = run_cases([FLOOR, TAM, ALONE], "cpu", FAST, progress=False, build=logging_build(built),
                        on_record=lambda so_far: seen.append([r.get("paired_ratio") is not None for r in so_far]))
    floor, tam, alone = records
    assert tam["paired_reference"] == FLOOR.label()
    assert 0 < tam["paired_ratio_q1"] <= tam["paired_ratio"] <= tam["paired_ratio_q3"]
    assert 2 <= tam["paired_reps"] <= 3 and tam["paired_error"] is None
    assert all(floor[field] is None and alone[field] is None for field in PAIRED)
    # the sweep builds each case once; the pairs phase builds the case and its reference, in train mode
    assert [case for case, _ in built] == [FLOOR, TAM, ALONE, TAM, FLOOR]
    assert all(all(modes) and modes for _, modes in built[3:])
    assert seen == [[False], [False, False], [False, False, False], [False, True, False]]  # saved after the pair


def test_settings_refuse_repetition_bounds_that_cross():
    with pytest.raises(ValueError, match="pair_min_reps"):
        Settings(min_reps=2, max_reps=10, pair_min_reps=20)
    with pytest.raises(ValueError, match="min_reps"):
        Settings(min_reps=0)


def test_measure_pair_times_both_steps_for_the_rounds_budget(monkeypatch):
    calls = []

    def fake_interleaved(fns, device, **timing):
        calls.append((len(fns), timing))
        return [[2.0, 4.0, 3.0], [1.0, 2.0, 1.0]]  # ratios 2, 2, 3

    monkeypatch.setattr("tam.bench.runner.time_interleaved", fake_interleaved)
    fields = measure_pair(TAM, FLOOR, "cpu", FAST, rounds=3, build=conv_workload)
    assert calls == [(2, dict(budget_s=0.01 * 2 * 3, min_reps=3, max_reps=3))]  # the pairs' own minimum
    assert fields == dict(paired_reference=FLOOR.label(), paired_ratio=2.0, paired_ratio_q1=2.0, paired_ratio_q3=3.0,
                          paired_reps=3, paired_error=None)


def test_oom_in_the_pairs_phase_is_recorded_not_raised():
    built = []
    build = logging_build(built, fail=lambda case, count: count >= 2)  # the sweep's two builds succeed
    floor, tam = run_cases([FLOOR, TAM], "cpu", FAST, progress=False, build=build)
    assert floor["status"] == tam["status"] == "ok" and tam["time_ms"] is not None
    assert tam["paired_ratio"] is None and tam["paired_reference"] is None and tam["paired_reps"] is None
    assert "out of memory" in tam["paired_error"] and FLOOR.label() in tam["paired_error"]
    assert "9.00 GiB" in tam["paired_error"]


def test_other_errors_in_the_pairs_phase_are_raised():
    def broken(case, device):
        raise ValueError("heads=3 must divide embed_channels")

    with pytest.raises(ValueError, match="heads=3"):
        measure_pair(TAM, FLOOR, "cpu", FAST, build=broken)


def test_a_side_out_of_memory_in_the_sweep_is_not_paired():
    built = []
    build = logging_build(built, fail=lambda case, count: case.kind == "floor")
    floor, tam = run_cases([FLOOR, TAM], "cpu", FAST, progress=False, build=build)
    assert floor["status"] == "oom" and tam["status"] == "ok"
    assert tam["paired_ratio"] is None and "not paired" in tam["paired_error"] and FLOOR.label() in tam["paired_error"]
    assert [case for case, _ in built] == [TAM]  # the pairs phase built nothing


def test_no_pairs_leaves_the_paired_fields_empty():
    built = []
    records = run_cases([FLOOR, TAM], "cpu", FAST, pairs=False, progress=False, build=logging_build(built))
    assert all(record[field] is None for record in records for field in PAIRED)
    assert [case for case, _ in built] == [FLOOR, TAM]  # the sweep only
