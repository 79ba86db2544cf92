"""Run folders: ownership, the lock (a live holder refuses, a killed one does not), inputs kept apart, names kept
inside their parent, and leftover temporaries of dead writers removed."""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tam.errors import UserError
from tam.files import remove_stale_temporaries, write_text_atomic
from tam.runfolder import LOCK, MANIFEST, RunFolder, check_apart, child, read_manifest


def checksums(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` -> its SHA-256: 'no file changed' is equality of two of these."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_claim_writes_a_manifest_naming_the_command_and_its_files(tmp_path):
    out = tmp_path / "run"
    with RunFolder.claim(out, command="bench") as run:
        assert (out / LOCK).is_file() and read_manifest(out)["status"] == "running"
        write_text_atomic(run.path / "results.json", "{}")
    manifest = read_manifest(out)
    assert manifest["command"] == "bench" and manifest["status"] == "finished"
    assert manifest["files"] == ["results.json"] and manifest["tam_version"] and manifest["created"]
    assert not (out / LOCK).exists()  # a finished run leaves no lock file behind


def test_a_failing_run_is_recorded_as_failed_and_a_refusal_leaves_no_trace(tmp_path):
    with pytest.raises(RuntimeError), RunFolder.claim(tmp_path / "run", command="train") as run:
        write_text_atomic(run.path / "config.yaml", "epochs: 1\n")
        raise RuntimeError("boom")
    assert read_manifest(tmp_path / "run")["status"] == "failed"
    with pytest.raises(UserError), RunFolder.claim(tmp_path / "new", command="train"):
        raise UserError("refused before writing anything")
    assert not (tmp_path / "new").exists()
    before = checksums(tmp_path / "run")
    with pytest.raises(UserError), RunFolder.claim(tmp_path / "run", command="train", resume=True):
        raise UserError("refused before writing anything")
    assert checksums(tmp_path / "run") == before


@pytest.mark.parametrize("owner", ["bench", None])
def test_a_folder_of_another_owner_is_refused_and_left_unchanged(tmp_path, owner):
    out = tmp_path / "run"
    if owner:
        with RunFolder.claim(out, command=owner):
            write_text_atomic(out / "results.json", "[1, 2]")
    else:
        out.mkdir()
        (out / "config.yaml").write_text("mine: 1\n")  # a user's own file
    before = checksums(out)
    for resume in (False, True):
        with pytest.raises(UserError) as error, RunFolder.claim(out, command="train", resume=resume):
            pass
        message = str(error.value)
        assert str(out) in message and ("--overwrite" in message or "--resume continues only" in message)
        assert (f"tam {owner}" in message) if owner else ("no tam command owns it" in message)
        assert checksums(out) == before


def test_overwrite_takes_the_folder_and_removes_the_previous_owners_files(tmp_path):
    out = tmp_path / "run"
    with RunFolder.claim(out, command="bench"):
        write_text_atomic(out / "results.json", "[]")
    (out / "mine.txt").write_text("kept")
    with RunFolder.claim(out, command="train", overwrite=True):
        write_text_atomic(out / "checkpoint.pt", "x")
    assert not (out / "results.json").exists() and (out / "mine.txt").read_text() == "kept"
    assert read_manifest(out)["command"] == "train" and read_manifest(out)["files"] == ["checkpoint.pt"]


def test_resume_and_overwrite_together_are_refused(tmp_path):
    with pytest.raises(UserError, match="pass one of them"), RunFolder.claim(tmp_path, command="train",
                                                                             resume=True, overwrite=True):
        pass


def test_the_same_command_continues_its_folder_and_keeps_its_file_list(tmp_path):
    out = tmp_path / "run"
    with RunFolder.claim(out, command="train"):
        write_text_atomic(out / "a", "1")
    created = read_manifest(out)["created"]
    with RunFolder.claim(out, command="train", resume=True):
        write_text_atomic(out / "b", "2")
    assert read_manifest(out)["files"] == ["a", "b"] and read_manifest(out)["created"] == created


def test_a_folder_from_before_manifests_is_adopted_on_resume_only(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"old")
    with pytest.raises(UserError, match="pass --resume to continue it"), RunFolder.claim(
            out, command="train", adopts=("checkpoint.pt",)):
        pass
    with RunFolder.claim(out, command="train", resume=True, adopts=("checkpoint.pt",)) as run:
        assert run.previous is None
    assert read_manifest(out)["command"] == "train"


def test_an_unreadable_manifest_is_one_clear_line(tmp_path):
    (tmp_path / MANIFEST).write_bytes(b"\xff\x00")
    with pytest.raises(UserError, match="not a readable tam run manifest"), RunFolder.claim(tmp_path, command="x"):
        pass


def test_a_file_as_out_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("data")
    with pytest.raises(UserError, match="exists and is a file"), RunFolder.claim(target, command="bench"):
        pass
    assert target.read_text() == "data"


def test_out_equal_to_inside_or_holding_an_input_is_refused(tmp_path):
    source = tmp_path / "data"
    source.mkdir()
    (source / "x.png").write_bytes(b"1")
    cases = ((source, "is the input"), (source / "run", "lies inside the input"), (tmp_path, "holds the input"))
    for out, word in cases:
        with pytest.raises(UserError, match=word):
            check_apart(out, [source])
    check_apart(tmp_path / "elsewhere", [source, None, "cifar10"])  # a dataset name is not a path


@pytest.mark.parametrize("name", ["../x", "/abs", "a/../../b", "..", "", "a/b"])
def test_names_from_values_stay_inside_their_parent(tmp_path, name):
    with pytest.raises(UserError, match="cell"):
        child(tmp_path, name, what="grid cell")
    assert child(tmp_path, "lr=0.1", what="grid cell") == tmp_path / "lr=0.1"


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_leftover_temporaries_of_dead_writers_are_removed(tmp_path):
    dead, alive = _dead_pid(), os.getppid()  # the parent: another process that runs
    for name in (f"results.json.{dead}.tmp", f"results.json.{alive}.tmp", "notes.tmp"):
        (tmp_path / name).write_text("partial")
    write_text_atomic(tmp_path / "results.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["results.json", f"results.json.{alive}.tmp", "notes.tmp"])
    (tmp_path / f"other.{dead}.tmp").write_text("partial")
    assert remove_stale_temporaries(tmp_path) == [tmp_path / f"other.{dead}.tmp"]


HOLD = """
import sys, time
from tam.runfolder import RunFolder
with RunFolder.claim(sys.argv[1], command="train"):
    print("claimed", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_is_refused_with_the_pid_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        with pytest.raises(UserError, match=rf"in use by another tam process \(PID {holder.pid} tam train\)"), \
                RunFolder.claim(out, command="train", resume=True):
            pass
    finally:
        holder.kill()  # SIGKILL: no cleanup runs
        holder.wait()
    assert (out / LOCK).exists() and json.loads((out / MANIFEST).read_text())["status"] == "running"
    with RunFolder.claim(out, command="train", resume=True) as run:
        assert run.previous["pid"] == holder.pid
