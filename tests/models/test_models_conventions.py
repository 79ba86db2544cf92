"""Backbone conventions: the projection shortcut's input, the classifier's init, and ``tam models --preset``."""

import argparse
import math

import pytest
import torch
import torch.nn.functional as F

import tam
from tam.errors import UserError
from tam.models import PreActBasic, PreActBottleneck
from tam.models import cli as models_cli


def _bn(x, norm):
    """Training-mode BatchNorm written out: batch mean, biased variance."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight[None, :, None, None] + norm.bias[None, :, None, None]


def _residual(unit, x, stride):
    """F(x) of a pre-activation unit: (BN → ReLU → conv) repeated, the stride on the 3×3 that carries it."""
    out = F.relu(_bn(x, unit.norm1))
    if isinstance(unit, PreActBasic):
        out = F.conv2d(out, unit.conv1.weight, stride=stride, padding=1)
        return F.conv2d(F.relu(_bn(out, unit.norm2)), unit.conv2.weight, padding=1)
    out = F.conv2d(out, unit.conv1.weight)
    out = F.conv2d(F.relu(_bn(out, unit.norm2)), unit.conv2.weight, stride=stride, padding=1)
    return F.conv2d(F.relu(_bn(out, unit.norm3)), unit.conv3.weight)


@pytest.mark.parametrize("unit_type", [PreActBasic, PreActBottleneck])
@pytest.mark.parametrize("shortcut_input", ["preactivated", "raw"])
def test_projection_shortcut_reads_the_chosen_input(unit_type, shortcut_input):
    torch.manual_seed(0)
    unit = unit_type(8, 16, stride=2, shortcut_input=shortcut_input).double()
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    read = F.relu(_bn(x, unit.norm1)) if shortcut_input == "preactivated" else x
    expected = _residual(unit, x, 2) + F.conv2d(read, unit.shortcut.weight, stride=2)
    torch.testing.assert_close(unit(x), expected, rtol=1e-12, atol=1e-12)


def test_identity_shortcuts_are_the_same_for_either_input():
    torch.manual_seed(0)
    raw = PreActBasic(8, 8, shortcut_input="raw").double()
    preactivated = PreActBasic(8, 8).double()
    preactivated.load_state_dict(raw.state_dict())
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    assert raw.shortcut is None and torch.equal(raw(x), preactivated(x))


def test_classifier_init():
    torch.manual_seed(0)
    fc = tam.create_model("wrn28_10", classifier_init="kaiming").fc  # 640 -> 10
    assert fc.weight.std().item() == pytest.approx(math.sqrt(2 / 10), rel=0.05)  # Kaiming fan-out: √(2/out)
    bound = 1 / math.sqrt(640)
    assert 0 < fc.bias.abs().max().item() <= bound  # nn.Linear's own bias draw
    default = tam.create_model("wrn28_10").fc
    assert default.weight.abs().max().item() <= bound and torch.equal(default.bias, torch.zeros(10))


@pytest.mark.parametrize(("options", "message"), [
    ({"shortcut_input": "input"}, r"shortcut_input must be one of \('preactivated', 'raw'\)"),
    ({"classifier_init": "xavier"}, r"classifier_init must be one of \('pytorch', 'kaiming'\)"),
])
def test_bad_backbone_conventions_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        tam.create_model("preresnet20", **options)


def _models(argv, capsys):
    parser = argparse.ArgumentParser()
    models_cli.add_arguments(parser)
    assert models_cli.run(parser.parse_args(argv)) == 0
    return capsys.readouterr().out


def test_models_cli_shows_the_preset_widths(capsys):
    out = _models(["preresnet56", "--attention", "tam", "--heads", "8", "--attention-blocks", "1,1,1",
                   "--preset", "icip2022"], capsys)
    assert "stages.0.attention: 1×tam (C=64, E=64, h=8) @ 32×32" in out
    assert "stages.2.attention: 1×tam (C=256, E=256, h=8) @ 8×8" in out
    assert "0.935M" in out
    one_head = _models(["preresnet56", "--attention", "tam", "--preset", "icip2022"], capsys)
    assert "stages.1.attention: 1×tam (C=128, h=1) @ 16×16" in one_head  # E = C/2, tam's default width


def test_models_cli_refuses_an_unknown_preset_in_one_line(capsys):
    with pytest.raises(UserError, match=r"preresnet20: preset must be one of \('icip2022',\), got 'thesis'"):
        _models(["preresnet20", "--preset", "thesis"], capsys)
