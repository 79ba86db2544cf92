"""``tam train --preset``: the preset's config file runs, and a preset that an option contradicts is one line."""

import json
from pathlib import Path

import pytest
import yaml

import tam
from data.tam_data_builders import cifar10_files, write
from tam.cli import main
from tam.train.checkpoint import load_checkpoint, save_checkpoint

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "train" / "cifar10_preresnet56_icip2022.yaml"


@pytest.fixture
def cifar10_550(tmp_path, monkeypatch):
    """A CIFAR-10 in the official python format with 550 training and 100 test images (random pixels)."""
    monkeypatch.setenv("TAM_CACHE_DIR", str(tmp_path / "cache"))
    files, _ = cifar10_files(per_batch=110, test=100)
    return write(files, tmp_path / "cifar-10-python.tar.gz", kind="tar.gz")


def test_the_preset_config_is_the_thesis_codes_recipe():
    values = yaml.safe_load(CONFIG.read_text())
    assert values["preset"] == "icip2022" and values["model"] == "preresnet56"
    recipe = {key: values[key] for key in ("lr", "momentum", "weight_decay", "batch_size", "epochs", "milestones",
                                           "gamma", "schedule", "nesterov", "label_smoothing", "crop_padding")}
    assert recipe == {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 128, "epochs": 300,
                      "milestones": [150, 225], "gamma": 0.1, "schedule": "step", "nesterov": False,
                      "label_smoothing": 0.0, "crop_padding": 4}


def test_train_with_the_preset_runs_one_epoch_on_512_images(cifar10_550, tmp_path):
    out = tmp_path / "run"
    # preresnet20 instead of the file's preresnet56 keeps this test short; the preset is the file's.
    argv = ["train", "--config", str(CONFIG), "--data", str(cifar10_550), "--model", "preresnet20",
            "--attention", "tam", "--heads", "8", "--attention-blocks", "0,1,1", "--epochs", "1",
            "--limit-train", "512", "--limit-test", "100", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_completed"] == 1
    expected = tam.create_model("preresnet20", attention="tam", heads=8, attention_blocks=(0, 1, 1), preset="icip2022")
    assert results["params"] == sum(p.numel() for p in expected.parameters())
    assert yaml.safe_load((out / "config.yaml").read_text())["preset"] == "icip2022"


def test_a_checkpoint_from_before_the_preset_key_still_resumes(cifar10_550, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", str(cifar10_550), "--model", "preresnet20", "--epochs", "1", "--limit-train", "64",
            "--limit-test", "20", "--batch-size", "32", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    checkpoint = load_checkpoint(out / "checkpoint.pt")
    del checkpoint["config"]["preset"]  # as written before the key existed, whose digest did not count it
    checkpoint["config_digest"] = "0000000000000000"
    save_checkpoint(out / "checkpoint.pt", checkpoint)
    assert main([*argv, "--resume"]) == 0
    assert main([*argv, "--resume", "--preset", "icip2022"]) == 2
    assert "cannot resume with a different config: preset: None -> 'icip2022'" in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "message"), [
    (["--preset", "thesis"], "preset: 'thesis' is not one of icip2022"),
    (["--preset", "icip2022", "--attention", "tam", "--attention-options", "embed_channels=8"],
     "preset 'icip2022' sets the embed width (embed_ratio=0.5); drop embed_channels=8 or the preset"),
    (["--preset", "icip2022", "--attention", "nl", "--attention-options", "scale_divisor=n"],
     "preset 'icip2022' sets scale_divisor='sqrt_n'; drop scale_divisor='n' or the preset"),
])
def test_bad_presets_are_one_line(flags, message, cifar10_550, tmp_path, capsys):
    argv = ["train", "--data", str(cifar10_550), "--model", "preresnet20", "--epochs", "1", "--device", "cpu",
            "--out", str(tmp_path / "run"), *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err  # refused before any data is prepared
