"""Per-epoch metrics (JSONL + CSV, truncated on resume) and `tam plot`."""

import argparse
import csv

import pytest

from tam.errors import UserError
from tam.train import plot
from tam.train.metrics import FIELDS, MetricsWriter, read_metrics
from tam.train.plot import plot_runs


def tam_plot(argv):
    parser = argparse.ArgumentParser()
    plot.add_arguments(parser)
    return plot.run(parser.parse_args(argv))


def record(epoch, top1):
    return {"epoch": epoch, "train_loss": 2.0 / epoch, "train_top1": top1 - 5, "test_loss": 2.1 / epoch,
            "test_top1": top1, "test_top5": 90.0, "lr": 0.1 / epoch, "train_images_per_s": 600.0,
            "train_seconds": 80.0, "epoch_seconds": 85.0}


def write_run(run_dir, epochs):
    writer = MetricsWriter(run_dir)
    for epoch in range(1, epochs + 1):
        writer.log(record(epoch, 40.0 + 10 * epoch))
    writer.close()


def test_jsonl_and_csv_and_resume_truncation(tmp_path):
    write_run(tmp_path, 3)
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert tuple(rows[0]) == FIELDS and float(rows[2]["test_top1"]) == 70.0
    # epoch 3 ran but its checkpoint was never written: a resume from epoch 2 drops it
    writer = MetricsWriter(tmp_path, keep_epochs=2)
    writer.log(record(3, 75.0))
    assert [r["test_top1"] for r in read_metrics(tmp_path)] == [50.0, 60.0, 75.0]
    assert not list(tmp_path.glob("*.tmp"))


def test_plot_one_and_several_runs(tmp_path):
    write_run(tmp_path / "a", 3)
    write_run(tmp_path / "b", 2)
    assert tam_plot([str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    out = plot_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "both.png")
    assert out.stat().st_size > 10_000


def test_plot_errors(tmp_path):
    with pytest.raises(UserError, match="metrics.jsonl"):
        plot_runs([tmp_path], tmp_path / "x.png")
    with pytest.raises(UserError, match="--out"):
        tam_plot([str(tmp_path), str(tmp_path)])


def test_tensorboard_is_optional(tmp_path):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="tensorboard"):
            MetricsWriter(tmp_path, tensorboard=True)
        return
    writer = MetricsWriter(tmp_path, tensorboard=True)
    writer.log(record(1, 50.0))
    writer.close()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_curves_have_integer_epochs_markers_on_short_runs_and_the_legend_beside_the_data():
    from tam.train.plot import MARKED_EPOCHS, curves_figure

    short = [record(epoch, 40.0 + epoch) for epoch in (1, 2)]  # a 2-epoch run
    long = [record(epoch, 40.0 + epoch / 10) for epoch in range(1, MARKED_EPOCHS + 2)]
    figure = curves_figure([("short", short), ("long", long)])
    figure.draw_without_rendering()
    for panel in figure.axes:
        short_line, long_line = [line for line in panel.get_lines() if list(line.get_xdata()) == [1, 2]][:1] + \
            [line for line in panel.get_lines() if len(line.get_xdata()) == MARKED_EPOCHS + 1][:1]
        assert short_line.get_marker() == "o" and long_line.get_marker() in (None, "None", "")
        low, high = panel.get_xlim()
        ticks = [t for t in panel.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert panel.get_legend() is None
    (legend,) = figure.legends
    assert all(legend.get_window_extent().x0 >= panel.get_window_extent().x1 for panel in figure.axes)
    assert [t.get_text() for t in legend.get_texts()] == ["short train loss", "short test loss", "long train loss",
                                                          "long test loss"]
