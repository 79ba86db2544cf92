"""`tam train` loses nothing and says what went wrong: run folders it does not own, a concurrent writer, a killed
run, damaged checkpoints, changed data, divergence and every bad number. Each test starts from an input that
once did harm (issue #17) and checks the refusal and that no file changed."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from data.tam_data_builders import cifar10_files, write
from tam.cli import main
from tam.errors import UserError
from tam.runfolder import LOCK, MANIFEST, read_manifest
from tam.train import train
from tam.train.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from tam.train.config import TrainConfig, from_dict

SRC = str(Path(__file__).resolve().parents[2] / "src")
TINY = ["--model", "preresnet20", "--batch-size", "8", "--limit-test", "10", "--device", "cpu", "--log-interval", "1"]


def checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def tiny_cifar(path: Path, *, seed: int = 0, per_batch: int = 4) -> Path:
    files, _ = cifar10_files(per_batch=per_batch, test=10, seed=seed)
    return write(files, path, kind="tar.gz")


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("TAM_CACHE_DIR", str(tmp_path / "cache"))
    return tiny_cifar(tmp_path / "cifar-10-python.tar.gz")


def config(data, out, **overrides) -> TrainConfig:
    values = {"data": str(data), "out": str(out), "model": "preresnet20", "batch_size": 8, "limit_test": 10,
              "device": "cpu", "epochs": 1, **overrides}
    return from_dict(values, "test")


@pytest.fixture
def trained(data, tmp_path):
    """One finished epoch: the good state the other tests must not lose."""
    out = tmp_path / "run"
    train(config(data, out))
    return out


def test_out_owned_by_another_command_or_holding_user_files_is_refused(data, tmp_path, capsys):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "results.json").write_text("[]")
    (bench / MANIFEST).write_text(json.dumps({"command": "bench", "files": ["results.json"]}))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my own notes\n")
    for out, says in ((bench, "holds a `tam bench` run"), (mine, "no tam command owns it")):
        before = checksums(out)
        assert main(["train", "--data", str(data), "--out", str(out), *TINY]) == 2
        err = capsys.readouterr().err
        assert says in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
        assert checksums(out) == before
    file_out = tmp_path / "a-file"
    file_out.write_text("x")
    assert main(["train", "--data", str(data), "--out", str(file_out), *TINY]) == 2
    assert "exists and is a file" in capsys.readouterr().err and file_out.read_text() == "x"


def test_an_existing_run_needs_resume_or_overwrite(trained, data, capsys):
    before = checksums(trained)
    assert main(["train", "--data", str(data), "--out", str(trained), "--epochs", "1", *TINY]) == 2
    assert "pass --resume to continue it, --overwrite to start afresh" in capsys.readouterr().err
    assert checksums(trained) == before
    assert main(["bench", "--out", str(trained), "--quick", "--suite", "heads", "--kinds", "tam"]) == 2
    assert "holds a `tam train` run" in capsys.readouterr().err and checksums(trained) == before
    (trained / "notes.txt").write_text("mine")
    assert main(["train", "--data", str(data), "--out", str(trained), "--overwrite", "--seed", "1", "--epochs", "1",
                 *TINY]) == 0
    assert load_checkpoint(trained / "checkpoint.pt")["config"]["seed"] == 1  # afresh, not resumed
    assert (trained / "notes.txt").read_text() == "mine"  # --overwrite removes only the previous run's files


def test_a_flipped_byte_in_the_checkpoint_is_refused_by_every_loader(trained, data, tmp_path, capsys):
    checkpoint = trained / "checkpoint.pt"
    damaged = bytearray(checkpoint.read_bytes())
    damaged[len(damaged) // 3] ^= 0x10
    checkpoint.write_bytes(bytes(damaged))
    before = checksums(trained)
    assert main(["train", "--data", str(data), "--out", str(trained), "--resume", "--epochs", "2", *TINY]) == 2
    assert "damaged checkpoint" in capsys.readouterr().err
    assert main(["analyze", "--checkpoint", str(trained), "--data", str(data), "--out", str(tmp_path / "a")]) == 2
    assert "damaged checkpoint" in capsys.readouterr().err
    with pytest.raises(UserError, match="damaged checkpoint"):
        load_checkpoint(checkpoint)
    assert checksums(trained) == before  # the damaged state stays for the user to inspect; nothing overwrote it


def test_resume_on_changed_data_says_what_differs(trained, data, tmp_path):
    tiny_cifar(data, seed=7)  # same size, other pixels
    with pytest.raises(UserError, match=r"other data than the checkpoint's \(fingerprint"):
        train(config(data, trained, epochs=2), resume=True)
    tiny_cifar(data, per_batch=5)  # another size
    with pytest.raises(UserError, match=r"train 20 -> 25"):
        train(config(data, trained, epochs=2), resume=True)


def test_older_and_foreign_checkpoints(trained, data, capfd):
    checkpoint = load_checkpoint(trained / "checkpoint.pt")
    assert checkpoint["format"] == FORMAT_VERSION and checkpoint["data"]["train"] == 20
    old = {**checkpoint, "format": 1}
    del old["data"]
    torch.save(old, trained / "checkpoint.pt")  # as tam wrote it before checksums
    train(config(data, trained, epochs=2), resume=True)
    err = capfd.readouterr().err
    assert "format 1, written before checksums: loaded unverified" in err
    save_checkpoint(trained / "checkpoint.pt", {**checkpoint, "format": 99})
    with pytest.raises(UserError, match="checkpoint format 99; this tam reads formats 1, 2"):
        load_checkpoint(trained / "checkpoint.pt")
    incomplete = {key: value for key, value in checkpoint.items() if key != "optimizer"}
    save_checkpoint(trained / "checkpoint.pt", incomplete)
    with pytest.raises(UserError, match="lacks 'optimizer'"):
        train(config(data, trained, epochs=2), resume=True)
    other = {**checkpoint, "model": {"conv.weight": torch.zeros(1)}}
    save_checkpoint(trained / "checkpoint.pt", other)
    with pytest.raises(UserError, match="weights do not fit preresnet20 with 10 classes"):
        train(config(data, trained, epochs=2), resume=True)


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(trained, data, monkeypatch):
    before = checksums(trained)
    original = torch.nn.CrossEntropyLoss.forward
    calls = []

    def nan_after_two_steps(self, logits, labels):
        calls.append(1)
        loss = original(self, logits, labels)
        return loss * float("nan") if len(calls) > 2 else loss

    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", nan_after_two_steps)
    with pytest.raises(UserError, match=r"training diverged: the loss was not finite at epoch 2, step 3 of 3"):
        train(config(data, trained, epochs=3), resume=True)
    after = checksums(trained)
    for name in ("checkpoint.pt", "metrics.jsonl"):  # config.yaml says epochs 3 now, as asked
        assert after[name] == before[name], name
    where = {"epoch": 2, "at": "step 3 of 3"}
    assert read_manifest(trained)["status"] == "diverged" and read_manifest(trained)["diverged"] == where
    results = json.loads((trained / "results.json").read_text())  # of the earlier finish: kept, and marked
    assert results["diverged"] == where and results["epochs_completed"] == 1


def test_lr_1e6_stops_with_a_message_and_lr_nan_is_refused_before_any_work(data, tmp_path, capsys):
    out = tmp_path / "diverging"
    code = main(["train", "--data", str(data), "--out", str(out), "--lr", "1e6", "--epochs", "5", *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "training diverged: the loss was not finite at epoch" in err, err
    stopped_at = read_manifest(out)["diverged"]["epoch"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()] \
        if (out / "metrics.jsonl").exists() else []
    # Every recorded epoch is finite, and the run stopped in the epoch right after them.
    assert [r["epoch"] for r in records] == list(range(1, stopped_at)) and stopped_at < 5
    assert all(torch.isfinite(torch.tensor([r["train_loss"], r["test_loss"]])).all() for r in records)
    assert not (out / "results.json").exists() and read_manifest(out)["status"] == "diverged"
    for bad in (["--lr", "nan"], ["--lr", "inf"], ["--lr", "-1"], ["--momentum", "-1"], ["--warmup-epochs", "-1"],
                ["--crop-padding", "100000"], ["--batch-size", "0"], ["--weight-decay", "nan"], ["--seed", "-3"],
                ["--label-smoothing", "1"], ["--gamma", "0"], ["--milestones", "5,-1"]):
        fresh = tmp_path / "never"
        assert main(["train", "--data", str(data), "--out", str(fresh), *TINY, *bad]) == 2, bad
        err = capsys.readouterr().err
        assert bad[0].lstrip("-").replace("-", "_") in err and len(err.strip().splitlines()) == 1, (bad, err)
        assert not fresh.exists(), bad  # refused before anything was written


def test_yaml_infinities_are_refused():
    for key, value in (("lr", float("inf")), ("momentum", float("nan")), ("weight_decay", -1.0)):
        with pytest.raises(UserError, match=key):
            from_dict({key: value}, "config.yaml")


HOLD = [sys.executable, "-m", "tam.cli", "train", "--epochs", "200", *TINY]


def test_two_trainings_into_one_folder_and_a_kill_9(data, tmp_path, capsys):
    """The second writer is refused while the first runs; after kill -9 of the first a new run proceeds.
    (flock locks belong to an open file, so this process's claim competes with the child's as another's would.)"""
    out = tmp_path / "shared"
    env = {**os.environ, "PYTHONPATH": SRC}
    first = subprocess.Popen([*HOLD, "--data", str(data), "--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / MANIFEST).exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert first.poll() is None and (out / LOCK).exists(), first.stderr.read() if first.poll() else ""
        code = main(["train", "--data", str(data), "--out", str(out), "--resume", *TINY])
        err = capsys.readouterr().err
        assert code == 2 and f"in use by another tam process (PID {first.pid}" in err
        assert len(err.strip().splitlines()) == 1
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert main(["train", "--data", str(data), "--out", str(out), "--resume", "--epochs", "1", *TINY]) == 0
    assert read_manifest(out)["status"] == "finished" and not list(out.glob("*.tmp"))
