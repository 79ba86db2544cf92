"""``tam analyze``: what trained attention learned.

- ``--checkpoint RUN_OR_FILE --data SOURCE``: maps, geometry and figures of one model.
- ``--grid EXPERIMENT_DIR...``: the geometry of every finished run of reproduction grids, mean ± std over seeds
  per cell and block, and the thesis's Non-local-softmax-against-TAM comparison with its interval.
- ``--trajectory RUN``: the geometry of the weights one run kept over its training (``--keep-weights``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tam.errors import UserError, check_range
from tam.runfolder import RunFolder

CHECKPOINT = "checkpoint.pt"
IMAGES = 128
SUMMARY_IMAGES = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint", metavar="RUN_OR_FILE",
                      help=f"a `tam train` run folder (its {CHECKPOINT}) or a checkpoint file")
    what.add_argument("--grid", nargs="+", metavar="EXPERIMENT_DIR",
                      help="`tam reproduce` experiment folders: every finished run's final weights, over seeds")
    what.add_argument("--trajectory", metavar="RUN",
                      help="a `tam train` run folder: the weights it kept (--keep-weights), epoch by epoch")
    parser.add_argument("--data", metavar="SOURCE",
                        help="dataset source or prepared cache; its test split is analysed (default: the source "
                             "the run was trained on, as its config records it)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for the report (report.md or README.md), its JSON and PNGs")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an --out that holds another command's run or files of your own")
    parser.add_argument("--images", type=int, default=None,
                        help=f"class-balanced test images for the statistics (default: {IMAGES} with --checkpoint, "
                             f"{SUMMARY_IMAGES} with --grid and --trajectory)")
    parser.add_argument("--figure-images", type=int, default=4,
                        help="images in the map figures, one per class (default: 4)")
    parser.add_argument("--queries", nargs="+", default=None, metavar="ROW,COL",
                        help="query positions as fractions of each block's grid (default: 0.5,0.5 0.2,0.25 0.75,0.75)")
    parser.add_argument("--query-block", type=int, default=256,
                        help="queries per block of the N×N map held at once (default: 256)")
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N (default: auto)")
    parser.add_argument("--cache-dir", default=None, help="where to keep the prepared dataset cache")


def parse_points(texts: list[str]) -> list[tuple[float, float]]:
    """``["0.5,0.5", ...]`` -> ``[(0.5, 0.5), ...]``, each in ``[0, 1]``; else a UserError naming ``--queries``."""
    points = []
    for text in texts:
        try:
            point = tuple(float(part) for part in text.split(","))
        except ValueError:
            point = ()
        if len(point) != 2 or not all(0.0 <= v <= 1.0 for v in point):
            raise UserError(f"--queries: {text!r} is not ROW,COL with both fractions in [0, 1] (e.g. 0.5,0.5)")
        points.append(point)
    return points


def checkpoint_path(value: str) -> Path:
    """The checkpoint file of a run folder, or the file itself."""
    path = Path(value)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise UserError(f"--checkpoint: {path} does not exist (give a `tam train` run folder or a checkpoint file)")
    return path


def recorded_source(path: Path, checkpoint: dict) -> str:
    """The data source ``checkpoint`` (read from ``path``) was trained on, from its config; refused when it is
    not here."""
    source = checkpoint["config"].get("data")
    if not source or not Path(source).exists():
        raise UserError(f"{path}: it was trained on {source!r}, which is not here; give the data with --data")
    return source


def run(args: argparse.Namespace) -> int:
    from tam.analysis.analyze import QUERY_POINTS
    from tam.device import resolve_device

    summarising = args.checkpoint is None
    count = args.images if args.images is not None else SUMMARY_IMAGES if summarising else IMAGES
    for flag, value in (("--images", count), ("--figure-images", args.figure_images),
                        ("--query-block", args.query_block)):
        check_range(flag, value, low=1, integer=True)
    points = parse_points(args.queries) if args.queries else QUERY_POINTS
    device = resolve_device(args.device)
    if summarising:
        return _summarise(args, count, device)
    from tam.train.checkpoint import MODEL_KEYS, load_checkpoint

    path = checkpoint_path(args.checkpoint)
    checkpoint = load_checkpoint(path, needs=MODEL_KEYS)  # checked before any data is prepared or folder claimed
    if args.data is None:
        args.data = recorded_source(path, checkpoint)
    with RunFolder.claim(args.out, command="analyze", overwrite=args.overwrite, inputs=[path, args.data]) as run:
        analysis = _analyze(args, path, checkpoint, count, device, points)
    for block in analysis["blocks"]:
        if "magnitude_correlation" in block:
            print(f"{block['name']}: {block['kind']} {block['normalization']} {block['geometry']}  "
                  f"rho(|k|) {block['magnitude_correlation']['mean']:+.2f}  "
                  f"rho(cos) {block['direction_correlation']['mean']:+.2f}  "
                  f"row entropy {block['row_entropy']['mean']:.2f}")
    print(f"wrote {run.path / 'report.md'}")
    return 0


def _analyze(args: argparse.Namespace, path: Path, checkpoint: dict, count: int, device, points) -> dict:
    import torch

    from tam.analysis.analyze import analyze
    from tam.analysis.grid import test_images
    from tam.analysis.model import load_trained
    from tam.data import load_dataset
    from tam.train.subset import balanced_subset

    dataset = load_dataset(args.data, cache_dir=args.cache_dir)
    model, about = load_trained(path, dataset.num_classes, checkpoint=checkpoint)
    model.to(device)
    images, labels = test_images(dataset, count, device)
    mean = torch.tensor(dataset.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(dataset.std, device=device).view(1, -1, 1, 1)
    shown = balanced_subset(labels.cpu(), min(args.figure_images, len(labels))).tolist()
    about["data"] = f"{args.data} ({dataset.name}, test split, {len(labels)} class-balanced images)"
    return analyze(model, images, images * std + mean, args.out, labels=labels, figure_images=shown,
                   points=points, query_block=args.query_block, about=about)


def _summarise(args: argparse.Namespace, images: int, device) -> int:
    from tam.analysis.grid import README_MD, analyze_grid, analyze_trajectory

    options = dict(data=args.data, images=images, device=device, cache_dir=args.cache_dir)
    inputs = [*(args.grid or [args.trajectory]), args.data]
    with RunFolder.claim(args.out, command="analyze", overwrite=args.overwrite, inputs=inputs) as run:
        if args.grid:
            summary = analyze_grid(args.grid, run.path, **options)
        else:
            analyze_trajectory(args.trajectory, run.path, **options)
    for row in summary["comparisons"] if args.grid else []:
        interval = "" if row["low"] is None else f" [{row['low']:+.2f}, {row['high']:+.2f}]"
        print(f"{row['a']} - {row['b']} {row['block']} {row['statistic']}: {row['difference']:+.2f}{interval} "
              f"({row['verdict']})")
    print(f"wrote {run.path / README_MD}")
    return 0
