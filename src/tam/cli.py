"""The `tam` command: a thin dispatcher over sub-commands that live beside the code they drive.

Each sub-command module exposes ``add_arguments(parser)`` and ``run(args) -> int``.

It is also the one error boundary: every failure a user can act on (a bad option, a bad file, a full disk, a
folder they may not write) ends as one line on stderr naming the file or option and what to do, exit code 2.
Anything else is a bug in tam and shows its traceback; ``--debug`` (anywhere on the line) or ``TAM_DEBUG=1``
shows the traceback of every error.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from tam.errors import UserError

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "reproduce": ("tam.reproduce.cli", "run an experiment of the thesis as a resumable grid and tabulate it"),
    "bench": ("tam.bench.cli", "benchmark time, memory and FLOPs of every attention kind (JSON, tables, plots)"),
    "train": ("tam.train.cli", "train a model on CIFAR/Tiny-ImageNet (resumable, torchrun-ready)"),
    "plot": ("tam.train.plot", "learning curves of one or more training runs into a PNG"),
    "models": ("tam.models.cli", "list the models: parameters, FLOPs at their input size, where attention sits"),
    "analyze": ("tam.analysis.cli",
                "what trained attention learned: maps, magnitude/direction geometry, over seeds and over training"),
    "data": ("tam.data.cli", "prepare, describe, download and benchmark datasets"),
}
DEBUG_FLAG = "--debug"
DEBUG_ENV = "TAM_DEBUG"

# What to do about an OS error, by errno.
_OS_ADVICE = {
    errno.ENOSPC: "the disk is full: free space and run again (a training run continues with --resume)",
    errno.EDQUOT: "the disk quota is exhausted: free space and run again (a training run continues with --resume)",
    errno.EACCES: "permission denied: choose a path you may use, or change its permissions",
    errno.EPERM: "operation not permitted: choose a path you may use, or change its permissions",
    errno.EROFS: "read-only file system: choose a path on a writable one",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, where a file was expected",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ELOOP: "too many levels of symbolic links",
}


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the usage is one ``--help`` away), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="tam", description="Efficient spatial attention for CNNs.")
    parser.add_argument(DEBUG_FLAG, action="store_true",
                        help=f"show the traceback of any error (anywhere on the line; or set {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module_name)
        importlib.import_module(module_name).add_arguments(command)
    return parser


def describe_failure(error: BaseException) -> str | None:
    """The one line a user reads for an expected failure; ``None`` for a bug (which keeps its traceback)."""
    if isinstance(error, UserError):
        return " ".join(str(error).split())
    if isinstance(error, OSError):
        where = error.filename if error.filename is not None else None
        advice = _OS_ADVICE.get(error.errno, error.strerror or str(error))
        if where is None:
            return f"{error.strerror or error}: {advice}" if error.strerror and error.errno in _OS_ADVICE else \
                " ".join(str(error).split())
        second = f" -> {error.filename2}" if error.filename2 else ""
        return f"{where}{second}: {advice}"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    args = build_parser().parse_args([arg for arg in argv if arg != DEBUG_FLAG])
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt as error:
        detail = f": {error}" if str(error) else ""
        print(f"tam {_command(args)}: interrupted{detail}", file=sys.stderr)
        return 130
    except Exception as error:
        message = describe_failure(error)
        if message is None or debug:
            raise
        print(f"tam {_command(args)}: error: {message}", file=sys.stderr)
        return 2


def _command(args: argparse.Namespace) -> str:
    """The command as typed, with its action where it has one (``data prepare``)."""
    action = getattr(args, "data_command", None)
    return f"{args.command} {action}" if action else args.command


if __name__ == "__main__":
    sys.exit(main())
