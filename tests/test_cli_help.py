"""Every option of every `tam` command says what it does, and no default writes into the committed results/."""

import argparse

import pytest

from tam.cli import build_parser


def _commands(parser, path=("tam",)):
    """(command path, parser) for every command and sub-command."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


COMMANDS = dict((" ".join(path), parser) for path, parser in _commands(build_parser()))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help_and_no_default_writes_into_results(command):
    for action in COMMANDS[command]._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"{command} {name}: no help text"
        assert not str(action.default).startswith("results"), f"{command} {name}: default {action.default!r}"


def test_data_bench_writes_under_runs_by_default():
    assert build_parser().parse_args(["data", "bench"]).out == "runs/loader"
