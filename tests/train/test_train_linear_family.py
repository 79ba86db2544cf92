"""`--attention xca|ea|linear|gc` trains, resumes and is analysed: a smoke run of each on real CIFAR-10 images."""

import argparse
import json

import pytest

from tam.analysis import cli as analyze_cli
from tam.train import train
from tam.train.config import from_dict

SMALL = {"model": "preresnet20", "limit_train": 64, "limit_test": 32, "batch_size": 32, "device": "cpu",
         "heads": 2, "attention_blocks": [0, 1, 1]}


@pytest.fixture(scope="module")
def cache(tmp_path_factory, cifar10_jpeg):
    from tam.data import load_dataset

    folder = tmp_path_factory.mktemp("cache")
    load_dataset(cifar10_jpeg, cache_dir=folder)
    return str(folder)


@pytest.mark.parametrize("kind", ["xca", "ea", "linear", "gc"])
def test_kind_trains_resumes_and_analyses(kind, cifar10_jpeg, cache, tmp_path):
    out = tmp_path / "run"
    values = {**SMALL, "data": str(cifar10_jpeg), "cache_dir": cache, "out": str(out), "attention": kind}
    train(from_dict({**values, "epochs": 1}, "test"))
    train(from_dict({**values, "epochs": 2}, "test"), resume=True)
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_completed"] == 2
    parser = argparse.ArgumentParser()
    analyze_cli.add_arguments(parser)
    args = parser.parse_args(["--checkpoint", str(out), "--out", str(tmp_path / "analysis"), "--images", "4",
                              "--figure-images", "1", "--device", "cpu"])
    assert analyze_cli.run(args) == 0
    blocks = json.loads((tmp_path / "analysis" / "analysis.json").read_text())["blocks"]
    assert [b["kind"] for b in blocks] == [kind, kind]
    assert ("magnitude_correlation" in blocks[0]) == (kind != "xca")  # xca has no spatial weights
