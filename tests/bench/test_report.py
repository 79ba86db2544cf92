"""Report files from synthetic records: JSON list, Markdown ratios and exponents, OOM rows, PNG plots."""

import json
from dataclasses import replace

import pytest

from tam.bench.report import fit_exponent, markdown, write_report
from tam.bench.suites import Case

ENV = dict(device="cpu", device_name="Test CPU (2 logical cores)", threads=2, load_avg_1m=0.5, torch="2.13.0",
           python="3.11", date="2026-01-01T00:00:00+00:00")


def record(kind, suite="heads", heads=1, side=32, time_ms=1.0, memory_mb=1.0, status="ok", flops=10**9, spread=0.1):
    oom = status == "oom"
    return dict(
        ENV, suite=suite, kind=kind, heads=heads, side=side, channels=64, batch=32, blocks=1, model=None,
        attention_blocks=None, embed_channels=32, status=status,
        error="out of memory in forward+backward" if oom else None,
        params=8320, flops=flops, flops_backward=2 * flops, flops_analytic=flops, saved_mb=memory_mb, peak_mb=None,
        rss_mb=None, memory_mb=None if oom else memory_mb, forward_ms=time_ms / 3, forward_q1_ms=0.0,
        forward_q3_ms=0.0, forward_min_ms=0.0, forward_max_ms=0.0, forward_reps=5,
        time_ms=None if oom else time_ms, time_q1_ms=time_ms * (1 - spread), time_q3_ms=time_ms * (1 + spread),
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
    assert "nl ÷ tam, fwd+bwd time: **25** (medians, quartile range 20.5–30.6; ≥ 20: yes)" in text
    assert "nl_sdpa ÷ tam, fwd+bwd time: **10** (medians, quartile range 8.18–12.2; ≥ 5: yes)" in text
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
        rows += [record("floor", "fastpath", heads=heads, side=side, time_ms=10.0, spread=0.005),
                 record("tam", "fastpath", heads=heads, side=side, time_ms=11.0 if side == 16 else 12.0, spread=0.005)]
    network = dict(model="preresnet56", heads=8, attention_blocks=[1, 1, 1])
    for kind, time_ms in (("none", 100.0), ("tam", 108.0), ("nl", 250.0)):
        rows.append({**record(kind, "network", time_ms=time_ms, spread=0.005), **network})
    text = markdown(rows)
    # unpaired: the ratio's spread runs from q1/q3 to q3/q1 of the two timings
    assert "tam ÷ floor at 16², 16 head(s): **1.1** (medians, quartile range 1.09–1.11; ≤ 1.15: yes)" in text
    assert "tam ÷ floor at 56², 8 head(s): **1.2** (medians, quartile range 1.19–1.21; ≤ 1.15: no)" in text
    assert "| tam | 56, 8 |" in text and "## fastpath: 64 channels, batch 32" in text
    assert "paired" not in text.lower()  # no pairs measured: no paired column, no word about them
    assert "tam ÷ none: **1.08** (medians, quartile range 1.07–1.09; ≤ 1.1: yes)" in text
    assert "- nl ÷ none: 2.5 (medians, quartile range 2.48–2.53)" in text


def test_network_claims_count_the_step_flops_and_bound_the_time_by_the_peak_matmul_rate():
    network = dict(model="preresnet56", heads=8, attention_blocks=[1, 1, 1], matmul_gflops=100.0)
    rows = [{**record("none", "network", time_ms=100.0, flops=10**9), **network},  # 3 GFLOP a step
            {**record("tam", "network", time_ms=120.0, flops=15 * 10**8), **network},  # 4.5 GFLOP
            {**record("nl", "network", time_ms=250.0, flops=3 * 10**9), **network}]
    text = markdown(rows)
    assert "- Peak matmul rate: 100 GFLOP/s" in text
    assert ("tam ÷ none: **1.2** (medians, quartile range 0.982–1.47; ≤ 1.1: not resolved: its IQR contains the "
            "bound); FLOPs 1.5×") in text
    assert "- nl ÷ none: 2.5 (medians, quartile range 2.05–3.06); FLOPs 3×" in text
    # 1.5 GFLOP added at 100 GFLOP/s: 15 ms of the fastest 80 ms step; they took 0.2 × 80 ms, the network
    # ran 3 GFLOP in 80
    assert ("- Compute bound: tam adds 1.5 GFLOP to a step of 80 ms (its fastest repetition); at this machine's "
            "peak matmul rate (100 GFLOP/s) they alone take 15 ms, so tam ÷ none ≥ 1.19 for any code that does "
            "them; here they ran at 93.8 GFLOP/s, the network without attention at 37.5.") in text
    assert "Compute bound" not in markdown([{k: v for k, v in r.items() if k != "matmul_gflops"} for r in rows])


def paired(row, reference: Case, ratio, q1, q3, reps=40):
    """``row`` timed interleaved with ``reference``: the fields that the runner's pairs phase adds."""
    return dict(row, paired_reference=reference.label(), paired_ratio=ratio, paired_ratio_q1=q1,
                paired_ratio_q3=q3, paired_reps=reps, paired_error=None)


def test_claims_use_the_paired_ratio_where_measured():
    floor_56 = Case("fastpath", "floor", heads=8, side=56, channels=64, batch=32)
    rows = [
        record("floor", "fastpath", heads=8, side=56, time_ms=10.0),
        paired(record("tam", "fastpath", heads=8, side=56, time_ms=12.0), floor_56, 1.02, 0.98, 1.05),
        record("floor", "fastpath", heads=1, side=16, time_ms=10.0),
        # paired with another configuration than the claim's divisor: the claim keeps the medians
        paired(record("tam", "fastpath", heads=1, side=16, time_ms=11.0), floor_56, 0.5, 0.4, 0.6),
    ]
    text = markdown(rows)
    assert "tam ÷ floor at 56², 8 head(s): **1.02** (paired, IQR 0.98–1.05, 40 reps; ≤ 1.15: yes)" in text
    assert ("tam ÷ floor at 16², 1 head(s): **1.1** (medians, quartile range 0.9–1.34; ≤ 1.15: not resolved: its "
            "IQR contains the bound)") in text
    row = next(line for line in text.splitlines() if line.startswith("| tam | 56, 8 |"))
    assert "| 1.20× | 1.02× [0.98–1.05] |" in row  # the quotient of medians stays, the paired ratio beside it
    assert "kind ÷ reference, paired [IQR]" in text and "*Paired*" in text


def test_heads_and_network_claims_use_the_paired_ratio_where_measured():
    rows = heads_records()
    tam_1 = Case("heads", "tam", heads=1, side=32, channels=64, batch=32)
    nl_1 = replace(tam_1, kind="nl")
    rows = [paired(r, tam_1, 1.04, 1.0, 1.07) if (r["kind"], r["heads"]) == ("tam", 16) else r for r in rows]
    rows = [paired(r, nl_1, 1.5, 1.4, 1.6) if (r["kind"], r["heads"]) == ("nl", 8) else r for r in rows]
    none = Case("network", "none", heads=8, side=32, channels=64, batch=32, model="preresnet56")
    network = dict(model="preresnet56", heads=8, attention_blocks=[1, 1, 1])
    rows += [{**record("none", "network", time_ms=100.0), **network},
             paired({**record("tam", "network", time_ms=115.0), **network}, none, 1.05, 1.01, 1.09),
             paired({**record("nl", "network", time_ms=250.0), **network}, none, 2.4, 2.3, 2.5)]
    text = markdown(rows)
    assert ("tam time at 16 ÷ at 1: **1.04** (paired, IQR 1–1.07, 40 reps; ≤ 1: not resolved: its IQR contains the "
            "bound)") in text
    assert "nl ÷ tam, fwd+bwd time: **25** (medians, quartile range 20.5–30.6; ≥ 20: yes)" in text  # nl's pair is with nl at 1 head
    assert "tam ÷ none: **1.05** (paired, IQR 1.01–1.09, 40 reps; ≤ 1.1: yes)" in text  # medians: 1.15
    assert "- nl ÷ none: 2.4 (paired, IQR 2.3–2.5, 40 reps)" in text


def test_a_pair_out_of_memory_is_listed_under_its_table():
    rows = [record("floor", "fastpath", heads=8, side=56),
            dict(record("tam", "fastpath", heads=8, side=56, time_ms=1.1), paired_reference=None,
                 paired_ratio=None, paired_error="out of memory paired with fastpath floor h8 …")]
    text = markdown(rows)
    assert "- tam at side, heads 56, 8: out of memory paired with fastpath floor h8 …" in text
    assert ("tam ÷ floor at 56², 8 head(s): **1.1** (medians, quartile range 0.9–1.34; ≤ 1.15: not resolved: its "
            "IQR contains the bound)") in text
    row = next(line for line in text.splitlines() if line.startswith("| tam | 56, 8 |"))
    assert "| 1.10× | — |" in row


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


def test_a_claim_reads_yes_or_no_only_when_its_whole_iqr_lies_on_one_side():
    from tam.bench.report import _check

    assert _check("r", 1.0031, 1, False, "paired", (0.95, 1.05)) == (
        "- r: **1.003** (paired; ≤ 1: not resolved: its IQR contains the bound)")
    # the quick bench once said "≤ 1.15: yes" for a median of 0.9 whose IQR was 0.27–4.52
    assert _check("r", 0.9, 1.15, False, "paired", (0.27, 4.52)).endswith("not resolved: its IQR contains the bound)")
    assert _check("r", 1.1, 1.15, False, "paired", (1.05, 1.14)) == "- r: **1.1** (paired; ≤ 1.15: yes)"
    assert _check("r", 21, 20, True, "paired", (19.5, 22)).endswith("(paired; ≥ 20: not resolved: its IQR contains the bound)")
    assert _check("r", 25, 20, True, "paired", (20.5, 30)).endswith("(paired; ≥ 20: yes)")
    assert _check("r", 15, 20, True, "paired", (14, 19)).endswith("(paired; ≥ 20: no)")
    assert _check("r", 1.18, 1.15, False, "paired", (1.16, 1.2)) == "- r: **1.18** (paired; ≤ 1.15: no)"
    assert _check("r", 0.9964, 1, False) == "- r: **0.9964** (≤ 1: yes)"


def test_the_report_marks_costs_under_load_and_covers_the_whole_run():
    floor = Case("fastpath", "floor", heads=8, side=56, channels=64, batch=32)
    rows = [record("floor", "fastpath", heads=8, side=56, time_ms=10.0),
            dict(paired(record("tam", "fastpath", heads=8, side=56, time_ms=11.0), floor, 1.02, 0.98, 1.05),
                 under_load=True, paired_date="2026-01-01T00:09:00+00:00")]
    text = markdown(rows)
    assert "2026-01-01T00:00:00+00:00 to 2026-01-01T00:09:00+00:00 (UTC)" in text  # the pairs came last
    spanned = [dict(row, run_started="2025-12-31T23:59:00+00:00", run_finished="2026-01-01T00:10:00+00:00")
               for row in rows]
    assert "2025-12-31T23:59:00+00:00 to 2026-01-01T00:10:00+00:00 (UTC)" in markdown(spanned)  # the whole run
    assert "- *Under load*: 1 of 2 configurations were timed with more torch threads than" in text
    row = next(line for line in text.splitlines() if line.startswith("| tam | 56, 8 |"))
    assert "11.0 [9.90–12.1] *under load*" in row
    assert "tam ÷ floor at 56², 8 head(s): **1.02** (paired, IQR 0.98–1.05, 40 reps; ≤ 1.15: yes) *(under load)*" in text
    assert "the paired one is the comparison" in text  # why medians and paired ratios differ
    assert "(not measured in this run: `--quick` turns it off" in text  # no record has an RSS
    assert "(not measured in this run" not in markdown([dict(rows[0], rss_mb=12.0), rows[1]])


def test_plots_show_quartile_bars_integer_counts_and_the_legend_beside_the_data():
    from matplotlib.container import ErrorbarContainer

    from tam.bench.report import plot_figure

    rows = [dict(record(kind, "blocks", time_ms=t * blocks), blocks=blocks)
            for blocks in (1, 2, 4) for kind, t in (("floor", 1.0), ("tam", 2.0), ("nl", 30.0))]
    figure = plot_figure(rows, "blocks")
    time_panel, memory_panel = figure.axes
    bars = [c for c in time_panel.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 3  # one per kind, from the quartiles
    tam_bars = bars[[c.get_label() for c in bars].index("tam")]
    segments = tam_bars.lines[2][0].get_segments()
    assert [tuple(seg[:, 1]) for seg in segments] == [pytest.approx((1.8 * b, 2.2 * b)) for b in (1, 2, 4)]
    figure.draw_without_rendering()  # lays out the constrained layout, so extents are final
    for panel in figure.axes:
        ticks = [t for t in panel.get_xticks() if panel.get_xlim()[0] <= t <= panel.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)  # a count axis has no fractional ticks
        assert panel.get_legend() is None
    (legend,) = figure.legends
    box = legend.get_window_extent()
    assert all(box.x0 >= panel.get_window_extent().x1 for panel in figure.axes)  # beside, not over data
    assert sorted(t.get_text() for t in legend.get_texts()) == ["floor", "nl", "tam"]
