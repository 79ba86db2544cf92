"""`tam train` end to end on a small subset of the real CIFAR-10: exact resume, refusals, run-folder files,
and DistributedDataParallel under torchrun matching one process."""

import json
import os
import subprocess
import sys

import pytest
import torch

from tam.errors import UserError
from tam.train import train
from tam.train.checkpoint import load_checkpoint, weights_path
from tam.train.config import TrainConfig, from_dict, to_yaml

SMALL = {"model": "preresnet20", "limit_train": 128, "limit_test": 50, "batch_size": 32, "device": "cpu"}


@pytest.fixture(scope="module")
def cifar(cifar10_jpeg, tmp_path_factory):
    """The shared CIFAR-10 with its prepared cache in a temp folder, so the decode happens once per module."""
    from tam.data import load_dataset

    cache_dir = tmp_path_factory.mktemp("cache")
    load_dataset(cifar10_jpeg, cache_dir=cache_dir)
    return {"data": str(cifar10_jpeg), "cache_dir": str(cache_dir)}


def small_config(cifar, out, **overrides) -> TrainConfig:
    return from_dict({**SMALL, **cifar, "out": str(out), **overrides}, "test")


def weights(out) -> dict:
    return load_checkpoint(out / "checkpoint.pt")["model"]


@pytest.fixture(scope="module")
def straight_and_resumed(cifar, tmp_path_factory):
    """Two epochs straight; one epoch, then a resume to two. The lr drops x0.1 after epoch 1, so a scheduler
    that failed to resume would show. The resumed run keeps its weights at init and after each epoch."""
    root = tmp_path_factory.mktemp("runs")
    recipe = {"milestones": [1], "epochs": 2}
    train(small_config(cifar, root / "straight", **recipe))
    train(small_config(cifar, root / "resumed", **{**recipe, "epochs": 1, "keep_weights": [0, 1, 2]}))
    train(small_config(cifar, root / "resumed", **{**recipe, "keep_weights": [0, 1, 2]}), resume=True)
    return root / "straight", root / "resumed"


def test_resume_is_bit_exact(straight_and_resumed):
    straight, resumed = (load_checkpoint(out / "checkpoint.pt") for out in straight_and_resumed)
    assert straight["epoch"] == resumed["epoch"] == 2
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    for key, state in straight["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], resumed["optimizer"]["state"][key]["momentum_buffer"])
    assert straight["scheduler"] == resumed["scheduler"]


def test_kept_weights_are_the_model_at_those_epochs(straight_and_resumed):
    straight, resumed = straight_and_resumed
    assert not (straight / "weights").exists()
    kept = {epoch: load_checkpoint(weights_path(resumed, epoch)) for epoch in (0, 1, 2)}
    assert sorted(p.name for p in (resumed / "weights").iterdir()) == ["epoch0.pt", "epoch1.pt", "epoch2.pt"]
    assert [kept[e]["epoch"] for e in (0, 1, 2)] == [0, 1, 2] and "optimizer" not in kept[2]
    assert kept[2]["config"]["keep_weights"] == [0, 1, 2]
    final = weights(resumed)
    assert all(torch.equal(final[k], v) for k, v in kept[2]["model"].items())
    name = next(k for k in final if k.endswith("conv.weight") or k.endswith("weight"))
    assert not torch.equal(kept[0]["model"][name], kept[1]["model"][name])
    assert not torch.equal(kept[1]["model"][name], kept[2]["model"][name])


def test_run_folder_holds_config_metrics_results_and_curves(straight_and_resumed):
    for out in straight_and_resumed:
        results = json.loads((out / "results.json").read_text())
        for key in ("final_top1", "final_top5", "best_top1", "epochs_completed", "params", "train_images_per_s"):
            assert key in results, key
        assert results["epochs_completed"] == 2 and results["params"] > 200_000
        assert 0 <= results["final_top1"] <= results["final_top5"] <= 100
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in records] == [1, 2]
        assert records[1]["lr"] == pytest.approx(0.01)
        assert len((out / "metrics.csv").read_text().splitlines()) == 3
        assert "model: preresnet20" in (out / "config.yaml").read_text()
        assert (out / "curves.png").stat().st_size > 0
        assert not list(out.glob("*.tmp"))


def test_resume_refuses_a_different_config(cifar, straight_and_resumed):
    _, resumed = straight_and_resumed
    before = weights(resumed)
    with pytest.raises(UserError) as error:
        train(small_config(cifar, resumed, model="preresnet32", lr=0.2, milestones=[1], epochs=3), resume=True)
    assert "lr: 0.1 -> 0.2; model: 'preresnet20' -> 'preresnet32'" in str(error.value)
    with pytest.raises(UserError, match="--resume"):
        train(small_config(cifar, resumed, milestones=[1], epochs=3))
    with pytest.raises(UserError, match="epochs"):
        train(small_config(cifar, resumed, milestones=[1], epochs=1), resume=True)
    assert all(torch.equal(before[k], v) for k, v in weights(resumed).items())


def test_ddp_two_processes_match_one(cifar, tmp_path):
    """torchrun --nproc_per_node=2 (gloo, synchronised BN) vs one process, same global batch: same weights
    after 4 steps of SGD with momentum.

    Augmentation is off: with it, each rank draws its own crops, so the two runs would see different pixels.
    Weights are float64: in float32 the two BatchNorm backward passes (native vs all-reduced) round differently
    (~1e-5 relative), and this small net at lr 0.1 amplifies that to ~1e-3 within two steps in either run; in
    float64 the runs agree to ~1e-15, so the 1e-5 check tests the distributed maths, not rounding."""
    recipe = {"epochs": 1, "augment": False,
              "sync_bn": True, "dtype": "float64"}
    one = small_config(cifar, tmp_path / "one", **recipe)
    train(one)
    two = small_config(cifar, tmp_path / "two", **recipe)
    config_file = tmp_path / "two.yaml"
    config_file.write_text(to_yaml(two))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "tam.cli", "train", "--config", str(config_file)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "results.json").read_text())["world_size"] == 2
    reference, distributed = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert reference.keys() == distributed.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(distributed[name], tensor, rtol=0, atol=1e-5, msg=name)


def test_interrupt_says_what_was_saved_and_how_to_resume(cifar, tmp_path, monkeypatch, capsys):
    import tam.train.loop as loop
    from tam.errors import Interrupted

    real, calls = loop.evaluate, []

    def evaluate_then_interrupt(*args, **kwargs):  # Ctrl-C during the second epoch's evaluation
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", evaluate_then_interrupt)
    out = tmp_path / "run"
    with pytest.raises(Interrupted, match=r"checkpoint\.pt holds epoch 1 of 3; continue with the same command and "
                                          r"--resume"):
        train(small_config(cifar, out, epochs=3))
    monkeypatch.setattr(loop, "evaluate", real)
    capsys.readouterr()
    train(small_config(cifar, out, epochs=2), resume=True)
    printed = capsys.readouterr().out
    assert "checkpoint.pt: resuming after epoch 1 of 2" in printed and "epochs 2..2" in printed


def test_the_cli_prints_an_interruption_with_its_hint(monkeypatch, capsys):
    import tam.models.cli
    from tam.cli import main
    from tam.errors import Interrupted

    def interrupted(args):
        raise Interrupted("run/checkpoint.pt holds epoch 1 of 3; continue with the same command and --resume")

    monkeypatch.setattr(tam.models.cli, "run", interrupted)
    assert main(["models"]) == 130
    assert capsys.readouterr().err == ("tam models: interrupted: run/checkpoint.pt holds epoch 1 of 3; continue "
                                       "with the same command and --resume\n")
