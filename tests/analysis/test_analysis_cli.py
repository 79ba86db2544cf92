"""`tam analyze` end to end on real CIFAR-10 test images, and its user errors."""

import argparse
import json

import pytest
import torch

from tam.analysis import cli
from tam.train.model import model_from_config
from tam.errors import UserError
from tam.train.checkpoint import save_checkpoint
from tam.train.config import TrainConfig
from tam.train.metrics import MetricsWriter


def analyze(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args([str(a) for a in argv]))


def make_run(folder, data, **fields):
    """A run folder as `tam train` leaves it: checkpoint (untrained weights, BN made non-trivial) and metrics."""
    fields = {"attention_blocks": [0, 1, 1], **fields}
    config = TrainConfig(data=str(data), model="preresnet20", epochs=1, out=str(folder), **fields)
    torch.manual_seed(0)
    model = model_from_config(config, num_classes=10)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):  # the attention's output BN starts at 0: wake it
            torch.nn.init.ones_(module.weight)
    save_checkpoint(folder / "checkpoint.pt", {"epoch": 1, "config": config.to_dict(), "model": model.state_dict()})
    MetricsWriter(folder).log({"epoch": 1, "test_top1": 12.5})
    return folder


@pytest.mark.parametrize("attention, fields, figures", [
    ("nl", {"heads": 2}, {"maps_stages-1-attention.png", "maps_stages-2-attention.png"}),
    ("tam", {"heads": 4}, {"maps_stages-1-attention.png", "transposed_stages-2-attention.png"}),
    ("cc", {}, {"maps_stages-2-attention.png"}),
    ("xca", {"heads": 2}, {"transposed_stages-1-attention.png", "transposed_stages-2-attention.png"}),
    ("ea", {"heads": 2}, {"maps_stages-1-attention.png", "transposed_stages-2-attention.png"}),
    ("linear", {"heads": 2}, {"maps_stages-2-attention.png", "transposed_stages-1-attention.png"}),
    ("gc", {"heads": 2}, {"maps_stages-1-attention.png", "maps_stages-2-attention.png"}),
])
def test_analyze_writes_report_json_and_a_figure_per_kind(tmp_path, cifar10_jpeg, capsys, attention, fields, figures):
    run = make_run(tmp_path / "run", cifar10_jpeg, attention=attention, **fields)
    out = tmp_path / "analysis"
    data = [] if attention == "cc" else ["--data", cifar10_jpeg]  # without --data: the source the run recorded
    assert analyze("--checkpoint", run, *data, "--out", out, "--images", 20, "--figure-images", 2,
                   "--device", "cpu") == 0
    analysis = json.loads((out / "analysis.json").read_text())
    assert analysis["images"] == 20 and len(analysis["figure_images"]) == 2
    assert analysis["about"]["test_top1_logged"] == 12.5
    assert [b["kind"] for b in analysis["blocks"]] == [attention, attention]
    spatial = attention != "xca"  # xca's weights mix channels: no spatial map, no key statistics
    assert not spatial or all(-1 <= b["magnitude_correlation"]["mean"] <= 1 for b in analysis["blocks"])
    report = (out / "report.md").read_text()
    assert "12.50% at epoch 1" in report and "(geometry.png)" in report
    for name in figures | {"geometry.png"} | ({"keys.png"} if spatial else set()):
        assert (out / name).read_bytes()[:4] == b"\x89PNG" and f"({name})" in report
    assert "wrote" in capsys.readouterr().out


def test_user_errors_name_the_argument(tmp_path, cifar10_jpeg):
    with pytest.raises(UserError, match="--checkpoint: .*does not exist"):
        analyze("--checkpoint", tmp_path, "--data", cifar10_jpeg, "--out", tmp_path / "o")
    run = make_run(tmp_path / "run", cifar10_jpeg, attention="nl")
    with pytest.raises(UserError, match="--queries"):
        analyze("--checkpoint", run, "--data", cifar10_jpeg, "--out", tmp_path / "o", "--queries", "0.5,2")
    with pytest.raises(UserError, match="--images"):
        analyze("--checkpoint", run, "--data", cifar10_jpeg, "--out", tmp_path / "o", "--images", "0")
    gone = make_run(tmp_path / "gone", tmp_path / "moved.tar.gz", attention="nl")
    with pytest.raises(UserError, match=r"trained on '.*moved\.tar\.gz', which is not here; give the data with --data"):
        analyze("--checkpoint", gone, "--out", tmp_path / "o")
    none = make_run(tmp_path / "none", cifar10_jpeg, attention="none", attention_blocks=None)
    with pytest.raises(UserError, match="no attention blocks"):
        analyze("--checkpoint", none, "--data", cifar10_jpeg, "--out", tmp_path / "o", "--images", 4)
