"""`tam reproduce --resume` in a fresh clone: a committed finished cell (manifest, results.json, weights; no
config.yaml, no checkpoint) is skipped, not refused nor retrained; a cell that did not finish is not."""

import json

from tam.reproduce.runner import is_finished
from tam.runfolder import MANIFEST
from tam.train.config import from_dict


def _cell(tmp_path, *, status="finished", epochs_completed=3, config_yaml=False):
    config = from_dict({"data": "/somewhere/cifar10.tar.gz", "out": str(tmp_path / "tam-h1" / "seed0"),
                        "model": "preresnet20", "epochs": 3, "attention": "tam"}, "test")
    folder = tmp_path / "tam-h1" / "seed0"
    folder.mkdir(parents=True)
    (folder / MANIFEST).write_text(json.dumps({"command": "train", "status": status, "config": config.to_dict()}))
    (folder / "results.json").write_text(json.dumps({"epochs_completed": epochs_completed}))
    return config


def test_a_committed_finished_cell_counts_as_finished_in_another_clone(tmp_path):
    config = _cell(tmp_path)
    moved = from_dict({**config.to_dict(), "data": "/another/clone/cifar10.tar.gz"}, "test")  # data lies elsewhere
    assert is_finished(config) and is_finished(moved)
    assert not is_finished(from_dict({**config.to_dict(), "epochs": 4}, "test"))
    assert not is_finished(from_dict({**config.to_dict(), "lr": 0.2}, "test"))


def test_a_cell_that_diverged_or_stopped_short_is_not_finished(tmp_path):
    assert not is_finished(_cell(tmp_path / "a", status="diverged"))
    assert not is_finished(_cell(tmp_path / "b", epochs_completed=2))
