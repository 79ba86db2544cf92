"""``tam plot RUN... [--out PNG]``: learning curves (loss, test top-1, lr) of one or more run folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from tam.errors import UserError
from tam.runfolder import check_apart
from tam.train.metrics import METRICS_JSONL, read_metrics

CURVES_PNG = "curves.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# Up to this many epochs a curve shows a marker at each: a 2-epoch run would otherwise be a bare segment.
MARKED_EPOCHS = 30


def plot_runs(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Draw the curves of ``run_dirs`` side by side (one colour per run) into the PNG ``out``."""
    from tam.files import write_atomic

    runs = []
    for run_dir in map(Path, run_dirs):
        records = read_metrics(run_dir)
        if not records:
            raise UserError(f"{run_dir}: no {METRICS_JSONL} with epoch records; is this a training run folder?")
        runs.append((run_dir.name, records))
    figure = curves_figure(runs)
    return write_atomic(out, lambda file: figure.savefig(file, format="png", dpi=110))


def curves_figure(runs: list[tuple[str, list[dict]]]):
    """Loss, test top-1 and learning rate against the epoch for each ``(name, epoch records)``: integer epoch
    ticks, a marker per epoch on short runs, one legend beside the panels.

    Returns:
        a ``matplotlib.figure.Figure``.
    """
    from matplotlib import rcParams
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(16, 4.2), layout="constrained")
    loss_ax, top1_ax, lr_ax = figure.subplots(1, 3)
    colours = rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (name, records) in enumerate(runs):
        epochs = [r["epoch"] for r in records]
        style = {"color": colours[index % len(colours)], "marker": "o" if len(epochs) <= MARKED_EPOCHS else None,
                 "markersize": 4}
        loss_ax.plot(epochs, [r["train_loss"] for r in records], label=f"{name} train loss", **style)
        loss_ax.plot(epochs, [r["test_loss"] for r in records], linestyle="--", label=f"{name} test loss", **style)
        top1_ax.plot(epochs, [r["test_top1"] for r in records], **style)
        lr_ax.plot(epochs, [r["lr"] for r in records], **style)
    for ax, title in ((loss_ax, "loss"), (top1_ax, "test top-1 (%)"), (lr_ax, "learning rate (end of epoch)")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    figure.legend(*loss_ax.get_legend_handles_labels(), loc="outside right upper", fontsize="small")
    return figure


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders written by `tam train`")
    parser.add_argument("--out", help=f"PNG to write (default: RUN/{CURVES_PNG} when one run is given)")
    parser.add_argument("--overwrite", action="store_true", help="replace an --out file that is not a PNG")


def run(args: argparse.Namespace) -> int:
    if args.out is None and len(args.runs) > 1:
        raise UserError("--out: required when plotting more than one run")
    out = Path(args.out or Path(args.runs[0]) / CURVES_PNG)
    check_apart(out, [Path(run) / METRICS_JSONL for run in args.runs])
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; --out names the PNG file to write")
    if out.is_file() and not args.overwrite and out.read_bytes()[:8] != PNG_SIGNATURE:
        raise UserError(f"--out {out}: exists and is not a PNG; choose another --out, or pass --overwrite "
                        "to replace it")
    out = plot_runs(args.runs, out)
    print(out)
    return 0
