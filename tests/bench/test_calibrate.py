"""`tam bench --suite dispatch`: the forms timed on the same weights, the fit of the rule's constant against
records whose answer is known, and the command end to end on a tiny grid."""

import argparse
import json
import math

import pytest
import torch

from tam.bench import calibrate, cli
from tam.bench.calibrate import Shape, dispatch_grid, dispatch_kinds, fit_write_cost, time_forms
from tam.layers import TransposedAttention


def record(breakeven, faster, elements=(4, 2)):
    """A record whose second form (gram) is cheaper by the rule exactly when write_cost > ``breakeven``."""
    first_elements, second_elements = elements
    return dict(forms=["transposed", "gram"], transposed_macs=1000, transposed_elements=first_elements,
                gram_macs=1000 + breakeven * (first_elements - second_elements), gram_elements=second_elements,
                faster=faster, device="cpu", amp="none")


def test_the_fit_is_the_range_that_ranks_the_most_shapes_as_measured():
    records = [record(100, "gram"), record(200, "transposed"), record(50, None), record(400, "transposed")]
    fit = fit_write_cost(records)
    assert (fit.low, fit.high, fit.right, fit.decided) == (100, 200, 3, 3)  # the tie counts for nothing
    assert fit.best == pytest.approx(math.sqrt(100 * 200))
    assert (fit.shipped, fit.shipped_source, fit.shipped_right) == (64.0, "cpu, measured", 2)
    assert not fit.agrees
    assert fit_write_cost([record(30, "gram"), record(200, "transposed")]).agrees  # 64 lies in 30–200


def test_the_fit_reads_the_device_and_dtype_of_the_records():
    cuda = [{**record(300, "gram"), "device": "cuda", "amp": "bf16"}]
    fit = fit_write_cost(cuda)
    assert (fit.low, fit.high) == (300, math.inf) and fit.best == 600
    assert fit.shipped_source.startswith("cuda bfloat16") and fit.agrees


def test_every_kind_with_two_forms_is_on_the_grid():
    assert "tam" in dispatch_kinds() and "nl" not in dispatch_kinds()
    grid = dispatch_grid()
    assert len(grid) == 36 * len(dispatch_kinds()) and len(dispatch_grid(quick=True)) == 8 * len(dispatch_kinds())
    assert {(s.channels, s.side, s.heads) for s in grid if s.kind == "tam"} >= {(128, 8, 1), (256, 32, 16)}


def test_time_forms_times_both_forms_and_states_their_costs():
    shape = Shape("tam", channels=8, side=4, heads=2, batch=2)
    result = time_forms(shape, "cpu", budget_s=0.01, min_reps=3, max_reps=3)
    assert result["forms"] == ["transposed", "gram"] and result["reps"] == 3
    assert result["transposed_ms"] > 0 and result["gram_ms"] > 0
    costs = TransposedAttention(8, heads=2).form_costs((4, 4))
    assert (result["gram_macs"], result["gram_elements"]) == costs["gram"]
    assert result["rule"] == TransposedAttention(8, heads=2).choose_form((4, 4), "cpu", torch.float32).form
    assert result["faster"] in (None, "transposed", "gram")
    assert result["faster"] is None or (result["faster"] == "gram") == (result["ratio"] < 1)


def test_the_dispatch_suite_writes_its_records_and_prints_the_fit(tmp_path, capsys, monkeypatch):
    shapes = [Shape("tam", 8, 4, 2, 2), Shape("tam", 16, 2, 1, 2)]
    monkeypatch.setattr(calibrate, "dispatch_grid", lambda quick: shapes)
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    threads = torch.get_num_threads()
    try:
        assert cli.run(parser.parse_args(["--suite", "dispatch", "--budget", "0.01", "--out", str(tmp_path / "d")])) == 0
    finally:
        torch.set_num_threads(threads)
    records = json.loads((tmp_path / "d" / "dispatch.json").read_text())
    assert [(r["channels"], r["side"]) for r in records] == [(8, 4), (16, 2)]
    assert not (tmp_path / "d" / "results.json").exists()  # dispatch alone runs no other suite
    printed = capsys.readouterr().out
    assert "tam on cpu: write cost " in printed and "the shipped 64 (cpu, measured)" in printed
    assert "| tam | 16 | 2² | 1 | 2 | transposed / gram |" in (tmp_path / "d" / "dispatch.md").read_text()
