"""The `tam` command: a thin dispatcher over sub-commands that live beside the code they drive.

Each sub-command module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tam.errors import UserError

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "reproduce": ("tam.reproduce.cli", "run an experiment of the thesis as a resumable grid and tabulate it"),
    "bench": ("tam.bench.cli", "benchmark time, memory and FLOPs of every attention kind (JSON, tables, plots)"),
    "train": ("tam.train.cli", "train a model on CIFAR/Tiny-ImageNet (resumable, torchrun-ready)"),
    "plot": ("tam.train.plot", "learning curves of one or more training runs into a PNG"),
    "models": ("tam.models.cli", "list the models: parameters, FLOPs at their input size, where attention sits"),
    "analyze": ("tam.analysis.cli", "what a trained model's attention learned: maps, magnitude/direction geometry"),
    "data": ("tam.data.cli", "prepare, describe, download and benchmark datasets"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tam", description="Efficient spatial attention for CNNs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module_name)
        importlib.import_module(module_name).add_arguments(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except (UserError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as error:
        print(f"tam {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tam {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
