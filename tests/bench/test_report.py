"""Report files from synthetic records: JSON list, Markdown ratios and exponents, OOM rows, PNG plots."""

import json

import pytest

from tam.bench.report import fit_exponent, markdown, write_report

ENV = dict(device="cpu", device_name="Test CPU (2 logical cores)", threads=2, load_avg_1m=0.5, torch="2.13.0",
           python="3.11", date="2026-01-01T00:00:00+00:00")


def record(kind, suite="heads", heads=1, side=32, time_ms=1.0, memory_mb=1.0, status="ok", flops=10**9):
    oom = status == "oom"
    return dict(
        ENV, suite=suite, kind=kind, heads=heads, side=side, channels=64, batch=32, blocks=1, model=None,
        attention_blocks=None, embed_channels=32, status=status,
        error="out of memory in forward+backward" if oom else None,
        params=8320, flops=flops, flops_backward=2 * flops, flops_analytic=flops, saved_mb=memory_mb, peak_mb=None,
        rss_mb=None, memory_mb=None if oom else memory_mb, forward_ms=time_ms / 3, forward_q1_ms=0.0,
        forward_q3_ms=0.0, forward_min_ms=0.0, forward_max_ms=0.0, forward_reps=5,
        time_ms=None if oom else time_ms, time_q1_ms=time_ms * 0.9, time_q3_ms=time_ms * 1.1,
        time_min_ms=time_ms * 0.8, time_max_ms=time_ms * 1.2, time_reps=5,
    )


def heads_records():
    rows = []
    for heads in (1, 8, 16):
        rows += [
            record("floor", heads=heads, time_ms=1.0, memory_mb=5.0),
            record("tam", heads=heads, time_ms=2.0, memory_mb=10.0),
            record("nl_sdpa", heads=heads, time_ms=20.0, memory_mb=12.0),
            record("nl", heads=heads, time_ms=50.0, memory_mb=100.0 * heads),
        ]
    return rows


def test_fit_exponent_recovers_power_laws():
    assert fit_exponent([64, 256, 1024], [5, 20, 80]) == pytest.approx(1.0)
    assert fit_exponent([64, 256, 1024], [1, 16, 256]) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        fit_exponent([1], [1])


def test_markdown_ratios_and_claims():
    text = markdown(heads_records())
    assert "Test CPU" in text and "torch 2.13.0" in text
    # at 8 heads: nl ÷ tam = 25×, nl_sdpa ÷ tam = 10×, tam ÷ nl memory = 10/800
    assert "nl ÷ tam, fwd+bwd time: **25** (≥ 20: yes)" in text
    assert "nl_sdpa ÷ tam, fwd+bwd time: **10** (≥ 5: yes)" in text
    assert "tam ÷ nl, memory: **0.0125** (≤ 0.1: yes)" in text
    assert "nl memory at 16 ÷ at 1: **16** (≥ 8: yes)" in text
    row = next(line for line in text.splitlines() if line.startswith("| tam | 8 |"))
    assert "| 25.0× | 2.00× |" in row  # time: nl ÷ tam, tam ÷ floor
    assert "| 80.0× | 2.00× |" in row  # memory: nl ÷ tam, tam ÷ floor


def test_markdown_exponents_of_the_resolution_suite():
    rows = []
    for side in (8, 16, 32):
        n = side * side
        rows += [record("tam", "resolution", side=side, time_ms=n / 100, memory_mb=n / 10),
                 record("nl", "resolution", side=side, time_ms=(n / 100) ** 2, memory_mb=(n / 10) ** 2)]
    text = markdown(rows)
    assert "| tam | 1.00 | 1.00 | 1.00 | 1.00 |" in text
    assert "| nl | 2.00 | 2.00 | 2.00 | 2.00 |" in text


def test_markdown_fast_path_and_network_claims():
    rows = []
    for side, heads in ((16, 1), (16, 16), (56, 8)):
        rows += [record("floor", "fastpath", heads=heads, side=side, time_ms=10.0),
                 record("tam", "fastpath", heads=heads, side=side, time_ms=11.0 if side == 16 else 12.0)]
    network = dict(model="preresnet56", heads=8, attention_blocks=[1, 1, 1])
    for kind, time_ms in (("none", 100.0), ("tam", 108.0), ("nl", 250.0)):
        rows.append({**record(kind, "network", time_ms=time_ms), **network})
    text = markdown(rows)
    assert "tam ÷ floor at 16², 16 head(s): **1.1** (≤ 1.15: yes)" in text
    assert "tam ÷ floor at 56², 8 head(s): **1.2** (≤ 1.15: no)" in text
    assert "| tam | 56, 8 |" in text and "## fastpath: 64 channels, batch 32" in text
    assert "tam ÷ none: **1.08** (≤ 1.1: yes)" in text and "- nl ÷ none: 2.5" in text


def test_out_of_memory_rows_are_kept_and_explained():
    rows = heads_records() + [record("nl", heads=32, status="oom"), record("tam", heads=32)]
    text = markdown(rows)
    oom_row = next(line for line in text.splitlines() if line.startswith("| nl | 32 |"))
    assert "OOM" in oom_row
    assert "nl at heads 32: out of memory in forward+backward" in text


def test_write_report_writes_json_markdown_and_plots(tmp_path):
    rows = heads_records() + [record("tam", "resolution", side=s) for s in (8, 16)]
    paths = write_report(rows, tmp_path / "out")
    names = sorted(p.name for p in paths)
    assert names == ["heads.png", "resolution.png", "results.json", "results.md"]
    loaded = json.loads((tmp_path / "out" / "results.json").read_text())
    assert isinstance(loaded, list) and loaded == rows
    for field in ("kind", "heads", "side", "channels", "batch", "blocks", "time_ms", "memory_mb", "flops",
                  "params", "device"):
        assert field in loaded[0]
    assert (tmp_path / "out" / "heads.png").read_bytes().startswith(b"\x89PNG")
    assert not list((tmp_path / "out").glob("*.tmp"))
