"""``tam models``: one row per model with parameters, FLOPs and attention sites."""

import argparse

import pytest

from tam import cli
from tam.errors import UserError
from tam.models import cli as models_cli
from tam.models import create_model
from tam.models.summary import summarize


def _run(argv, capsys):
    parser = argparse.ArgumentParser()
    models_cli.add_arguments(parser)
    assert models_cli.run(parser.parse_args(argv)) == 0
    return capsys.readouterr().out


def test_registered():
    assert cli.COMMANDS["models"][0] == "tam.models.cli"


def test_plain_models(capsys):
    out = _run(["preresnet2*", "preresnet56"], capsys)
    rows = [line.split() for line in out.splitlines()[2:-1]]
    assert [row[0] for row in rows] == ["preresnet20", "preresnet56"]
    assert rows[0] == ["preresnet20", "3×32×32", "10", "0.272M", "0.082", "9×basic", "-"]
    assert rows[1][3] == "0.590M" and rows[1][5] == "18×bottleneck"
    assert "bottlenecks from depth 44 up" in out.splitlines()[-1]


def test_attention_sites(capsys):
    out = _run(["preresnet20", "--attention", "nl", "--attention-blocks", "0,2,1", "--heads", "2"], capsys)
    assert "stages.1.attention: 2×nl (C=32, h=2) @ 16×16" in out
    assert "stages.2.attention: 1×nl (C=64, h=2) @ 8×8" in out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["resnet*"], r"no model matches 'resnet\*'; available: preresnet20"),
        (["preresnet20", "--attention-blocks", "0,1"], r"need --attention"),
        (["preresnet20", "--attention", "tam", "--attention-blocks", "0;1;1"], r"comma-separated ints"),
        (["preresnet18", "--attention", "tam", "--attention-blocks", "0,1,1"], r"preresnet18: attention_blocks must"),
    ],
)
def test_errors(argv, match, capsys):
    with pytest.raises(UserError, match=match):
        _run(argv, capsys)


def test_summary_counts_the_fused_cpu_attention():
    # On CPU, impl="sdpa" runs a fused kernel that FlopCounterMode alone counts as 0.
    naive, fused = (
        summarize(create_model("preresnet20", attention="nl", impl=impl), (3, 32, 32)) for impl in ("naive", "sdpa")
    )
    plain = summarize(create_model("preresnet20"), (3, 32, 32))
    assert fused.flops == naive.flops > plain.flops
    assert fused.params == naive.params
