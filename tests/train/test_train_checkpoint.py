"""Checkpoints: plain data only (weights_only loads), crafted files refused, atomic under SIGKILL."""

import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from tam.errors import UserError
from tam.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state


class Payload:
    """An object that would run code when unpickled by a trusting loader."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_round_trip_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"epoch": 3, "model": model.state_dict(),
                                                        "optimizer": optimizer.state_dict(), "rng": rng_state()})
    assert not list(tmp_path.glob("*.tmp"))
    torch.load(path, weights_only=True)  # the contract: loadable by the safe loader as such
    checkpoint = load_checkpoint(path)
    assert checkpoint["epoch"] == 3
    assert torch.equal(checkpoint["model"]["weight"], model.weight.detach())
    torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9).load_state_dict(checkpoint["optimizer"])


def test_rng_states_restore_every_generator():
    state = rng_state()
    first = (torch.rand(3), random.random(), np.random.rand(), np.random.randn())
    set_rng_state(state)
    second = (torch.rand(3), random.random(), np.random.rand(), np.random.randn())
    assert torch.equal(first[0], second[0]) and first[1:] == second[1:]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("write", [
    lambda path: torch.save({"format": 1, "model": {}, "extra": Payload()}, path),
    lambda path: path.write_bytes(pickle.dumps({"format": 1, "extra": Payload()})),
], ids=["torch.save", "raw-pickle"])
def test_crafted_file_with_python_objects_is_refused(tmp_path, write, capfd):
    path = tmp_path / "checkpoint.pt"
    write(path)
    with pytest.raises(UserError, match="non-tensor Python objects") as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)
    assert "this must never run" not in capfd.readouterr().out


def test_garbage_and_foreign_files_are_refused(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weight": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not a tam training checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_kill_during_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 0, "weights": torch.zeros(8)})
    # A child rewrites a large checkpoint in a loop; SIGKILL it while a write is in flight.
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import torch
        from tam.train.checkpoint import save_checkpoint
        big = torch.ones(64 * 2**20 // 4)
        for epoch in range(1, 1000):
            save_checkpoint({str(path)!r}, {{"epoch": epoch, "weights": big * epoch}})
    """)])
    try:
        tmp = path.with_name(f"{path.name}.{child.pid}.tmp")
        deadline = time.monotonic() + 60
        while not (tmp.exists() and tmp.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert tmp.exists(), "the child never started writing"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    checkpoint = load_checkpoint(path)
    epoch = checkpoint["epoch"]
    assert torch.all(checkpoint["weights"] == epoch)
