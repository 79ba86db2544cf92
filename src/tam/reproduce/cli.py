"""``tam reproduce EXPERIMENT``: an experiment of the thesis as a resumable grid, ending in a table."""

from __future__ import annotations

import argparse

from tam.errors import UserError, check_range
from tam.presets import describe_presets
from tam.runfolder import RunFolder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="experiment name (configs/reproduce/<name>.yaml) or YAML path")
    parser.add_argument("--budget", default="cpu", help="smoke (minutes) | cpu (sized for a small CPU) | gpu (10 "
                                                        "minutes of one GPU: scripts/gpu_reproduce.sh) | full (the "
                                                        "thesis recipe, for a GPU); default cpu")
    parser.add_argument("--seeds", type=int, help="seeds per cell (default: the budget's)")
    parser.add_argument("--out", help="experiment folder (default: runs/reproduce/<experiment>-<budget>)")
    parser.add_argument("--data", help="dataset source or cache (default: the experiment's)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--preset", help=f"build every cell with a published implementation's conventions: "
                                         f"{describe_presets()}")
    parser.add_argument("--resume", action="store_true", help="continue an experiment folder: skip finished "
                                                              "runs, resume interrupted ones")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an --out that holds another command's run or files of your own")
    parser.add_argument("--reuse", action="append", default=[], metavar="DIR",
                        help="another experiment's folder whose finished cells with the very same config are "
                             "read from there instead of trained again (repeatable)")
    parser.add_argument("--baseline", metavar="DIR",
                        help="an earlier experiment folder (another budget): the table states its smallest "
                             "resolvable difference beside this one's")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="a training-config value over the budget's for every run, e.g. --set amp=bf16 "
                             "(repeatable; a resumed grid must be given the same)")
    parser.add_argument("--time-budget", type=float, metavar="SECONDS",
                        help="train each run for the most epochs at which the whole grid fits SECONDS from this "
                             "command's start on this device (measured, then kept in OUT/epochs.json)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once, each in its own process with an equal share of the torch "
                             "threads (default 1)")
    parser.add_argument("--quick-cost", action="store_true",
                        help="measure each cell's step cost briefly, as the smoke budget does (for smoke tests)")
    parser.add_argument("--table-only", action="store_true",
                        help="train nothing: write the table of --out from the runs finished so far")


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    started = time.monotonic()  # --time-budget counts from here
    from tam.presets import PRESETS
    from tam.reproduce.experiment import load_experiment
    from tam.reproduce.pipeline import reproduce

    experiment = load_experiment(args.experiment)
    experiment.budget(args.budget)  # an unknown budget is refused before it names a folder
    if args.preset is not None and args.preset not in PRESETS:
        raise UserError(f"--preset: {args.preset!r} is not one of {', '.join(PRESETS)}")
    if args.preset is not None and experiment.bench is not None:
        raise UserError(f"--preset builds training cells; experiment {experiment.name} measures bench suites")
    preset = "" if args.preset is None else f"-{args.preset}"
    out = Path(args.out or f"runs/reproduce/{experiment.name}{preset}-{args.budget}")
    if args.seeds is not None:
        check_range("--seeds", args.seeds, low=1, integer=True)
    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item}: expected KEY=VALUE, e.g. --set amp=bf16")
        overrides[key.strip().replace("-", "_")] = value
    if args.time_budget is not None:
        check_range("--time-budget", args.time_budget, low=0, low_open=True)
    check_range("--jobs", args.jobs, low=1, integer=True)
    if args.jobs > 1 and args.time_budget is not None:
        raise UserError("--time-budget sizes the epochs of runs trained one after another: use it with --jobs 1")
    reuse = tuple(Path(folder) for folder in args.reuse)
    for flag, folder in [("--reuse", folder) for folder in reuse] + [("--baseline", args.baseline)]:
        if folder is not None and not Path(folder).is_dir():
            raise UserError(f"{flag} {folder}: no such folder")
    if args.table_only and not out.is_dir():
        raise UserError(f"--out {out}: no such experiment folder to tabulate")
    with RunFolder.claim(out, command="reproduce", resume=args.resume or args.table_only, overwrite=args.overwrite,
                         inputs=[args.data, *reuse],
                         adopts=("*/seed*/results.json", "*/seed*/checkpoint.pt")) as run:
        if run.previous is not None and not (args.resume or args.table_only):
            raise UserError(f"--out {out}: holds an earlier experiment; pass --resume to continue it, "
                            "or choose another --out")
        readme = reproduce(experiment, args.budget, out, seeds=args.seeds, data=args.data, device=args.device,
                           reuse=reuse, train=not args.table_only,
                           baseline=Path(args.baseline) if args.baseline else None, preset=args.preset,
                           overrides=overrides, time_budget=args.time_budget, started=started,
                           quick_cost=args.quick_cost or args.budget == "smoke", jobs=args.jobs)
    print(f"table: {readme}")
    return 0
