"""The CLI's error boundary: every subcommand, fed bad arguments, answers with exit code 2 and one line on stderr
naming the option or file, never a traceback; ``--debug`` shows it; OS errors (full disk, read-only) are one
line with what to do."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data.tam_data_builders import cifar10_files, write
from tam.cli import describe_failure, main
from tam.errors import UserError


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Things the bad arguments point at: a binary file, a text file, a source, a folder, a torn metrics file."""
    root = tmp_path_factory.mktemp("bad")
    (root / "binary.yaml").write_bytes(bytes(range(256)))
    (root / "notes.txt").write_text("mine\n")
    (root / "junk.pt").write_bytes(b"not a checkpoint")
    (root / "empty").mkdir()
    source = write(cifar10_files(per_batch=2, test=2)[0], root / "c10.tar.gz", kind="tar.gz")
    torn = root / "torn-run"
    torn.mkdir()
    (torn / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 1.0}) + "\n{\"epoch\": 2, \"tr")
    (root / "list.yaml").write_text("title: x\ngrid:\n  - {attention: tam}\n")
    (root / "escape.yaml").write_text("title: x\ngrid:\n  - {attention: [none], cache_dir: ['/../../x']}\n")
    return root


# (argv with {root} for the fixture folder, a fragment the one line must contain)
BAD = [
    ([], "the following arguments are required: COMMAND"),
    (["nonsense"], "invalid choice"),
    (["train", "--lr", "x"], "lr: cannot read 'x'"),
    (["train", "--data", "{root}/c10.tar.gz", "--lr", "nan"], "lr: must be a finite number"),
    (["train", "--data", "{root}/c10.tar.gz", "--momentum", "-1"], "momentum"),
    (["train", "--data", "{root}/c10.tar.gz", "--crop-padding", "100000"], "crop_padding"),
    (["train", "--data", "{root}/c10.tar.gz", "--warmup-epochs", "-1"], "warmup_epochs"),
    (["train", "--config", "{root}/binary.yaml"], "not a text file"),
    (["train", "--config", "{root}/empty"], "is a folder"),
    (["train", "--config", "{root}/missing.yaml"], "no such file"),
    (["train"], "--data: required"),
    (["train", "--data", "{root}/c10.tar.gz", "--out", "{root}/notes.txt"], "exists and is a file"),
    (["train", "--data", "{root}/c10.tar.gz", "--out", "{root}/c10.tar.gz"], "exists and is a file"),
    (["train", "--data", "{root}", "--out", "{root}/run"], "lies inside the input"),
    (["train", "--data", "{root}/c10.tar.gz", "--resume", "--overwrite", "--out", "{root}/x"], "pass one of them"),
    (["train", "--bogus"], "unrecognized arguments"),
    (["bench", "--budget", "inf"], "--budget: must be a finite number"),
    (["bench", "--budget", "-1"], "--budget"),
    (["bench", "--threads", "0"], "--threads"),
    (["bench", "--rounds", "0"], "--rounds"),
    (["bench", "--memory-limit", "nan"], "--memory-limit"),
    (["bench", "--device", "tpu"], "--device"),
    (["bench", "--out", "{root}/notes.txt", "--quick"], "exists and is a file"),
    (["bench", "--out", "{root}/torn-run", "--quick"], "no tam command owns it"),
    (["analyze", "--checkpoint", "{root}/missing", "--data", "x", "--out", "{root}/a"], "--checkpoint"),
    (["analyze", "--checkpoint", "{root}/junk.pt", "--data", "{root}/c10.tar.gz", "--out", "{root}/a"], "junk.pt"),
    (["analyze", "--checkpoint", "{root}/junk.pt", "--data", "x", "--out", "{root}/a", "--images", "0"],
     "--images"),
    (["analyze", "--checkpoint", "{root}/junk.pt", "--data", "x", "--out", "{root}/a", "--queries", "2,2"],
     "--queries"),
    (["reproduce", "no-such-experiment"], "no experiment"),
    (["reproduce", "cifar10", "--seeds", "0"], "--seeds"),
    (["reproduce", "cifar10", "--budget", "../../x"], "--budget: '../../x' is not one of"),
    (["reproduce", "{root}/list.yaml", "--data", "{root}/c10.tar.gz", "--out", "{root}/r1"],
     "expected a non-empty list of values"),
    (["reproduce", "{root}/escape.yaml", "--data", "{root}/c10.tar.gz", "--out", "{root}/r2", "--budget", "smoke"],
     "not a usable file or folder name"),
    (["data", "prepare", "{root}/missing"], "no such file"),
    (["data", "prepare", "{root}/c10.tar.gz", "--out", "{root}/c10.tar.gz", "--overwrite"], "is the input"),
    (["data", "prepare", "{root}/notes.txt", "--out", "{root}/n.pt"], "not a dataset source"),
    (["data", "prepare", "{root}/notes.txt"], "tam data prepare: error: "),  # refused before 'preparing ...'
    (["data", "prepare", "{root}/c10.tar.gz", "--workers", "0"], "--workers"),
    (["data", "info", "{root}/junk.pt"], "junk.pt"),
    (["data", "info", "{root}/missing.pt"], "no such file"),
    (["data", "download", "imagenet"], "invalid choice"),
    (["data", "bench", "--batch-size", "0", "--out", "{root}/db"], "--batch-size"),
    (["data", "bench", "--passes", "0", "--out", "{root}/db"], "--passes"),
    (["data", "bench", "--out", "{root}/notes.txt"], "exists and is a file"),
    (["plot", "{root}/empty"], "no metrics.jsonl"),
    (["plot", "{root}/torn-run"], "line 2 is not an epoch record"),
    (["plot", "{root}/torn-run", "--out", "{root}/notes.txt"], "is not a PNG"),
    (["plot", "{root}/torn-run", "--out", "{root}/torn-run/metrics.jsonl"], "is the input"),
    (["models", "--num-classes", "0"], "--num-classes"),
    (["models", "--heads", "-1", "--attention", "tam"], "--heads"),
    (["models", "nosuchmodel*"], "no model matches"),
]


def run_tam(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, says", BAD, ids=[" ".join(argv) or "(nothing)" for argv, _ in BAD])
def test_bad_arguments_are_one_line_with_exit_code_2(argv, says, files, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TAM_DEBUG", raising=False)
    before = sorted(str(p) for p in files.rglob("*"))
    code, err = run_tam([arg.replace("{root}", str(files)) for arg in argv], capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert says in err, err
    assert sorted(str(p) for p in files.rglob("*")) == before  # a refusal writes nothing


def test_debug_shows_the_traceback(files, capsys, monkeypatch):
    monkeypatch.delenv("TAM_DEBUG", raising=False)
    with pytest.raises(UserError, match="--threads"):
        main(["bench", "--threads", "0", "--debug"])
    monkeypatch.setenv("TAM_DEBUG", "1")
    with pytest.raises(UserError, match="--threads"):
        main(["bench", "--threads", "0"])


def test_a_real_process_prints_one_line_and_a_bug_keeps_its_traceback(files, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    env.pop("TAM_DEBUG", None)
    bad = subprocess.run([sys.executable, "-m", "tam.cli", "bench", "--budget", "inf"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert describe_failure(ZeroDivisionError("a bug")) is None  # not an expected failure: the traceback stays


@pytest.mark.parametrize("number, says", [
    (errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied"),
])
def test_os_errors_are_one_line_with_what_to_do(number, says, tmp_path, capsys, monkeypatch):
    """A full disk, a read-only file system or a refused permission, met when the run folder is claimed:
    before any measurement, one line naming the path."""
    def failing_mkdir(self, *args, **kwargs):
        raise OSError(number, os.strerror(number), str(self))

    monkeypatch.setattr(Path, "mkdir", failing_mkdir)
    code, err = run_tam(["bench", "--out", str(tmp_path / "out"), "--quick", "--suite", "heads"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{tmp_path / 'out'}: {says}" in err
