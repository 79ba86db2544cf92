"""The segmentation and precision suites: out of memory at the budget never ends a run, the measured peak
follows the model, the precision cells say what overflows, and the reports hold every cell."""

import argparse
import doctest
import json

import pytest
import torch

import tam.bench.precision
import tam.bench.report_scale
import tam.bench.suites_scale
from tam.bench import cli
from tam.bench.memory_model import BlockShape, predict_peak
from tam.bench.precision import FirstNonFinite, PrecisionCell, run_precision
from tam.bench.report_scale import cell_verdict, precision_markdown, segmentation_markdown
from tam.bench.suites_scale import ScaleCase, run_segmentation, segmentation_cases
from tam.bench.worker import Worker
from tam.errors import UserError

MIB = 2**20


@pytest.fixture(autouse=True)
def keep_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("module", [tam.bench.precision, tam.bench.report_scale, tam.bench.suites_scale])
def test_docstring_examples_run(module):
    assert doctest.testmod(module, raise_on_error=False).failed == 0


def test_worker_measures_within_the_model_and_survives_out_of_memory_and_death():
    shape = BlockShape("nl", 64, 32, 64)  # naive Non-local, 1 head: 3 maps of 2048² floats (48 MiB) dominate
    with Worker("cpu", threads=1) as worker:
        answer = worker.measure(shape, "training", budget_s=0.01, memory_limit_bytes=1 << 30)
        assert answer["status"] == "ok" and answer["time_ms"] > 0
        assert abs(answer["peak_bytes"] / predict_peak(shape, "training") - 1) <= 0.15
        # Under a budget below what the step needs, the child's allocation fails and is answered, not raised.
        short = worker.measure(shape, "training", budget_s=0.01, memory_limit_bytes=8 * MIB)
        assert short["status"] == "oom" and "out of memory" in short["error"] and short["time_ms"] is None
        # A child killed by the system (SIGKILL, as the OOM killer sends) is answered and replaced.
        worker.child.kill()
        dead = worker.measure(shape, "inference", budget_s=0.01)
        assert dead["status"] == "oom" and "died" in dead["error"]
        assert worker.measure(shape, "inference", budget_s=0.01)["status"] == "ok"


def test_a_case_predicted_over_the_budget_is_recorded_and_not_run():
    small = ScaleCase(BlockShape("tam", 16, 4, 8), "inference")
    large = ScaleCase(BlockShape("nl", 16, 64, 128, heads=8), "inference")  # 3·8·8192² floats ≈ 6 GiB
    records = run_segmentation([large, small], "cpu", memory_limit_bytes=64 * MIB, budget_s=0.01, threads=1,
                               progress=False)
    assert [r["status"] for r in records] == ["over budget", "ok"]
    assert records[0]["measured_mb"] is None and records[0]["time_ms"] is None
    assert "predicted 6" in records[0]["error"] and records[0]["predicted_mb"] > 6 * 1024


def test_a_case_forecast_past_the_time_limit_is_skipped():
    cases = [ScaleCase(BlockShape("nl", 16, side, 2 * side), "inference") for side in (4, 64)]
    records = run_segmentation(cases, "cpu", memory_limit_bytes=1 << 30, budget_s=0.01, threads=1,
                               max_case_s=1e-6, progress=False)
    assert [r["status"] for r in records] == ["ok", "skipped"]
    assert "forecast" in records[1]["error"]


def test_segmentation_grid_covers_the_issue():
    cases = segmentation_cases(["tam", "nl"])
    maps = {(c.shape.height, c.shape.width) for c in cases}
    assert {(64, 128), (128, 256)} <= maps and all(c.shape.channels == 512 for c in cases)
    assert {c.shape.heads for c in cases} == {1, 8}
    assert {(c.phase, c.shape.batch) for c in cases} == {("inference", 1), ("training", 1), ("training", 2)}
    assert {(c.shape.height, c.shape.width) for c in cases if c.shape.batch == 2} == {(64, 128)}


def test_first_non_finite_names_the_op_that_overflows():
    x = torch.full((4, 4), 200.0, dtype=torch.float16)
    with FirstNonFinite() as watch:
        y = x @ x  # 4 · 200² = 160000 > 65504
        _ = y * 0  # inf · 0 = NaN, but its input was already inf: not blamed
    assert watch.found.startswith("aten.mm.default") and "float16 max 6.55e+04" in watch.found
    with FirstNonFinite() as watch:
        torch.zeros(3).masked_fill(torch.tensor([True, False, False]), float("-inf"))  # a softmax mask, on purpose
    assert watch.found is None


def test_precision_cells_on_a_small_map():
    cells = [PrecisionCell(kind, dtype, "autocast", 8, 8, 1) for kind in ("tam", "nl_sdpa") for dtype in ("bf16", "fp16")]
    records = run_precision(cells, "cpu", memory_limit_bytes=1 << 30, progress=False)
    for record in records:
        assert record["status"] == "ok" and record["forward_finite"] and record["backward_finite"]
        assert record["representable"] and 0 < record["relative_error"] <= record["bound"]
        assert cell_verdict(record) == "pass"
    over = run_precision(cells[:1], "cpu", memory_limit_bytes=1, progress=False)[0]
    assert over["status"] == "over budget" and over["relative_error"] is None


def test_precision_report_names_failing_cells_with_what_overflowed():
    base = dict(kind="linear", dtype="fp16", mode="cast", height=8, width=8, magnitude=100, channels=64, heads=1,
                positions=64, status="ok", error=None, bound=5e-3, reference_max=10.0, representable=True,
                device_name="cpu", threads=1, load_avg_1m=1.0, torch="x", python="y", date="d")
    failing = {**base, "forward_finite": False, "backward_finite": False, "relative_error": float("inf"),
               "overflow": "aten.bmm.default → [1, 32, 32] float16"}
    inaccurate = {**base, "magnitude": 10, "forward_finite": True, "backward_finite": True, "relative_error": 0.1,
                  "overflow": None}
    fine = {**base, "magnitude": 1, "forward_finite": True, "backward_finite": True, "relative_error": 1e-3,
            "overflow": None}
    too_large = {**failing, "height": 16, "width": 16, "reference_max": 8e4, "representable": False}
    text = precision_markdown([fine, inaccurate, failing, too_large])
    assert "linear fp16 cast 8×8 mean 100: overflows first in aten.bmm.default" in text
    assert "linear fp16 cast 8×8 mean 10: finite, error 0.1 > 0.005" in text
    failing_cells, out_of_range = text.split("## Failing cells")[1].split("## Out of the format's range")
    assert "mean 1:" not in failing_cells and "16×16" not in failing_cells
    assert "linear fp16 cast 16×16 mean 100: max |a₆₄| 8e+04 > 6.55e+04; overflows first in aten.bmm" in out_of_range
    assert cell_verdict({**failing, "representable": False}) == "out of range"


def test_segmentation_report_compares_prediction_and_measurement():
    def record(kind, heads, phase, measured, time_ms, side=(8, 16)):
        return dict(suite="segmentation", kind=kind, channels=16, height=side[0], width=side[1], heads=heads, batch=1,
                    positions=side[0] * side[1], phase=phase, predicted_mb=10.0, flops=1, status="ok", error=None,
                    measured_mb=measured, time_ms=time_ms, time_q1_ms=time_ms, time_q3_ms=time_ms, reps=3,
                    device_name="cpu", threads=1, load_avg_1m=1.0, torch="x", python="y", date="d")

    records = [record(kind, 8, phase, 10.5, t) for kind, t in (("tam", 1.0), ("nl_sdpa", 2.0)) for phase in
               ("inference", "training")]
    text = segmentation_markdown(records, budget_bytes=MIB)
    assert "1.050" in text and "within 15%: yes" in text
    assert "TAM forward peak ÷ nl_sdpa forward peak: **1**" in text
    assert "| tam | 8 | inference | 128: 0.5 | faster at every N measured (from 128)" in text


def bench(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(list(argv)))


def test_scale_suites_run_on_their_own(tmp_path):
    with pytest.raises(UserError, match="run on their own"):
        bench("--suite", "segmentation", "heads", "--out", str(tmp_path / "a"))
    with pytest.raises(UserError, match="--max-case-seconds"):
        bench("--suite", "precision", "--max-case-seconds", "0", "--out", str(tmp_path / "b"))


def test_precision_suite_from_the_command_line(tmp_path):
    out = tmp_path / "scale"
    assert bench("--suite", "precision", "--quick", "--kinds", "tam", "--threads", "1", "--memory-limit", "1",
                 "--max-case-seconds", "5", "--out", str(out)) == 0
    records = json.loads((out / "precision.json").read_text())
    assert {(r["height"], r["dtype"], r["mode"], r["magnitude"]) for r in records} == {
        (h, d, m, g) for h in (8, 32) for d in ("fp16", "bf16") for m in ("autocast", "cast") for g in (1, 10, 100)}
    assert "## bf16, autocast" in (out / "precision.md").read_text()
    assert (out / "precision.png").stat().st_size > 0
