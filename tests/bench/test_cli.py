"""`tam bench` end to end on a small grid, and its user errors."""

import argparse
import json

import pytest
import torch

from tam.bench import cli
from tam.errors import UserError


@pytest.fixture(autouse=True)
def keep_torch_threads():
    threads = torch.get_num_threads()  # the command sets them for the process it runs in
    yield
    torch.set_num_threads(threads)


def bench(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(list(argv)))


def test_quick_resolution_writes_all_three_kinds_of_output(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["--quick", "--suite", "resolution", "--kinds", "tam", "floor", "--budget", "0.01", "--out", str(out)]
    assert bench(*argv) == 0
    records = json.loads((out / "results.json").read_text())
    assert {(r["kind"], r["side"]) for r in records} == {(k, s) for k in ("tam", "floor") for s in (8, 16, 32)}
    assert all(r["status"] == "ok" and r["rss_mb"] is None for r in records)  # --quick skips the RSS processes
    assert "## resolution" in (out / "results.md").read_text()
    assert (out / "resolution.png").stat().st_size > 0
    assert "6 configurations (0 out of memory)" in capsys.readouterr().out


def test_amp_runs_every_case_under_autocast_and_says_so(tmp_path):
    out = tmp_path / "bench"
    argv = ["--quick", "--suite", "fastpath", "--kinds", "tam", "floor", "--amp", "bf16", "--no-pairs",
            "--budget", "0.01", "--out", str(out)]
    assert bench(*argv) == 0
    records = json.loads((out / "results.json").read_text())
    assert {r["amp"] for r in records} == {"bf16"} and all(r["status"] == "ok" for r in records)
    assert "every forward under `autocast` to bf16 (as `tam train --amp bf16`)" in (out / "results.md").read_text()


@pytest.mark.parametrize("pairs", [True, False])
def test_pairs_are_on_unless_no_pairs(pairs, tmp_path):
    out = tmp_path / "bench"
    argv = ["--quick", "--suite", "fastpath", "--kinds", "tam", "floor", "--budget", "0.01", "--out", str(out)]
    assert bench(*argv, *([] if pairs else ["--no-pairs"])) == 0
    records = json.loads((out / "results.json").read_text())
    tam = [r for r in records if r["kind"] == "tam"]
    assert len(tam) == 2 and all(r["paired_error"] is None for r in records)
    if pairs:
        assert all(r["paired_ratio"] > 0 and r["paired_reference"].startswith("fastpath floor") for r in tam)
    else:
        assert all(r["paired_ratio"] is None and r["paired_reference"] is None for r in records)
    claims = [line for line in (out / "results.md").read_text().splitlines() if line.startswith("- tam ÷ floor")]
    assert len(claims) == 2 and all(("(paired, IQR" in line) == pairs for line in claims)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--budget", "0"], "--budget"),
        (["--memory-limit", "-1"], "--memory-limit"),
        (["--device", "tpu"], "--device"),
        (["--threads", "0"], "--threads"),
        (["--rounds", "0"], "--rounds"),
        (["--device", "cpu", "--rss", "--budget", "-3"], "--budget"),
    ],
)
def test_bad_arguments_are_user_errors(argv, message, tmp_path):
    with pytest.raises(UserError, match=message):
        bench(*argv, "--out", str(tmp_path))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="CUDA is not available"):
        bench("--device", "cuda", "--out", str(tmp_path))


def test_out_must_be_a_folder(tmp_path):
    taken = tmp_path / "file"
    taken.write_text("")
    with pytest.raises(UserError, match="not a folder"):
        bench("--out", str(taken))


@pytest.mark.slow
def test_the_whole_quick_benchmark(tmp_path):
    assert bench("--quick", "--out", str(tmp_path)) == 0
    records = json.loads((tmp_path / "results.json").read_text())
    assert {r["suite"] for r in records} == {"heads", "resolution", "blocks", "fastpath", "network"}
    assert {p.name for p in tmp_path.glob("*.png")} == {"heads.png", "resolution.png", "blocks.png"}
