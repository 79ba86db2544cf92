"""``tam train``: every config key is a flag; a ``--config`` YAML file sets them first, flags override it."""

from __future__ import annotations

import argparse
import dataclasses

from tam.errors import UserError
from tam.layers.registry import attention_kinds
from tam.train.config import TrainConfig, field_types, from_dict, load_yaml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", help="a YAML file of config keys (flags override it)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/checkpoint.pt if present (the config must match, epochs may grow)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh in an --out that holds an earlier run or files of your own")
    types, defaults = field_types(), TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{field.metadata['help']} (default: {getattr(defaults, field.name)!r})"
        if types[field.name] is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=help_text)
        elif field.name == "attention":
            parser.add_argument(flag, default=argparse.SUPPRESS, choices=attention_kinds(include_none=True),
                                help=help_text)
        else:
            parser.add_argument(flag, default=argparse.SUPPRESS, metavar=_metavar(field.name, types[field.name]), help=help_text)


def _metavar(name: str, kind) -> str:
    text = str(kind)
    return "A,B,..." if "list" in text else "K=V,..." if "dict" in text else "N" if "int" in text else \
        "X" if "float" in text else name.upper()


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the ``--config`` file, then the flags given on the command line."""
    config = from_dict(load_yaml(args.config), source=args.config) if args.config else TrainConfig()
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    config = from_dict(flags, source="command line", base=config)
    if not config.data:
        raise UserError("--data: required (a dataset source or a prepared cache), on the command line or in --config")
    return config


def run(args: argparse.Namespace) -> int:
    from tam.train.loop import train

    train(resolve_config(args), resume=args.resume, overwrite=args.overwrite)
    return 0
