"""Broken input: one line from the CLI naming the file and the problem, no traceback, no partial cache."""

import io
import re
import shutil
import tarfile

import pytest
from tam_data_builders import cifar10_files, encode, imagefolder_files, tinyimagenet_files, write

from tam import cli
from tam.data import load_dataset, prepare
from tam.errors import UserError


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """``tam data ...`` through the real dispatcher (only the data command registered): (code, stdout, stderr)."""
    monkeypatch.setattr(cli, "COMMANDS", {"data": cli.COMMANDS["data"]})

    def run(*args):
        code = cli.main(["data", *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _folder(tmp_path, files):
    return write(files, tmp_path / "src")


def missing_path(tmp_path):
    return tmp_path / "no-such-dataset.tar.gz", r"no-such-dataset\.tar\.gz: no such file or folder"


def truncated_archive(tmp_path):
    good = write(imagefolder_files(train=20)[0], tmp_path / "good.tar.gz", "tar.gz").read_bytes()
    bad = tmp_path / "cut.tar.gz"
    bad.write_bytes(good[: len(good) // 2])
    return bad, r"cut\.tar\.gz: truncated or corrupt archive"


def corrupt_archive(tmp_path):
    data = bytearray(write(imagefolder_files(train=20)[0], tmp_path / "good.tar.gz", "tar.gz").read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0x5A
    bad = tmp_path / "flipped.tar.gz"
    bad.write_bytes(bytes(data))
    return bad, r"flipped\.tar\.gz: truncated or corrupt archive"


def truncated_zip(tmp_path):
    good = write(imagefolder_files()[0], tmp_path / "good.zip", "zip").read_bytes()
    bad = tmp_path / "cut.zip"
    bad.write_bytes(good[:-30])
    return bad, r"cut\.zip: truncated or corrupt archive"


def not_a_source(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    return path, r"notes\.txt: not a dataset source"


def text_file_in_class_folder(tmp_path):
    files = imagefolder_files()[0]
    files["train/dog/README.txt"] = b"these are dogs"
    return write(files, tmp_path / "s.tar.gz", "tar.gz"), r"s\.tar\.gz:train/dog/README\.txt: not an image"


def truncated_image(tmp_path):
    files = imagefolder_files()[0]
    files["test/emu/img1.png"] = files["test/emu/img1.png"][:60]
    return _folder(tmp_path, files), r"src/test/emu/img1\.png: not a readable image"


def image_of_another_size(tmp_path):
    import numpy as np

    files = imagefolder_files()[0]
    files["test/cat/img0.png"] = encode(np.zeros((9, 9, 3), np.uint8), "PNG")
    return _folder(tmp_path, files), r"src/test/cat/img0\.png: image is 9x9, expected 8x6"


def class_folders_differ(tmp_path):
    files = {name.replace("test/emu/", "test/owl/"): blob for name, blob in imagefolder_files()[0].items()}
    return _folder(tmp_path, files), r"src: class folders differ between train/ and test/ \(only in train/: emu; only in test/: owl\)"


def empty_class_folder(tmp_path):
    path = _folder(tmp_path, imagefolder_files()[0])
    (path / "train" / "fox").mkdir()
    (path / "test" / "fox").mkdir()
    return path, r"src/train/fox: empty class folder"


def empty_class_in_archive(tmp_path):
    """An archive whose train/fox and test/fox folders are entries without files."""
    files = imagefolder_files()[0]
    out = tmp_path / "e.tar"
    with tarfile.open(out, "w") as archive:
        for folder in ("train/fox", "test/fox"):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        for name, blob in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))
    return out, r"e\.tar:train/fox: empty class folder"


def cifar_batch_missing(tmp_path):
    files = cifar10_files()[0]
    del files["cifar-10-batches-py/data_batch_3"]
    return write(files, tmp_path / "c.tar.gz", "tar.gz"), r"c\.tar\.gz:cifar-10-batches-py/data_batch_3: missing"


def cifar_pickle_truncated(tmp_path):
    files = cifar10_files()[0]
    files["cifar-10-batches-py/data_batch_2"] = files["cifar-10-batches-py/data_batch_2"][:500]
    return _folder(tmp_path, files), r"src/cifar-10-batches-py/data_batch_2: not a readable CIFAR pickle"


def tiny_val_annotation_unknown_class(tmp_path):
    files = tinyimagenet_files()[0]
    name = "tiny-imagenet-200/val/val_annotations.txt"
    files[name] += b"val_99.JPEG\tn99999999\t0\t0\t1\t1\n"
    return _folder(tmp_path, files), r"val_annotations\.txt: line 8: class 'n99999999' is not in wnids\.txt"


def tiny_val_image_unlabelled(tmp_path):
    files = tinyimagenet_files()[0]
    files["tiny-imagenet-200/val/images/val_77.JPEG"] = files["tiny-imagenet-200/val/images/val_0.JPEG"]
    return _folder(tmp_path, files), r"val/images/val_77\.JPEG: not listed in val_annotations\.txt"


BROKEN = [
    missing_path, truncated_archive, corrupt_archive, truncated_zip, not_a_source, text_file_in_class_folder,
    truncated_image, image_of_another_size, class_folders_differ, empty_class_folder, empty_class_in_archive,
    cifar_batch_missing, cifar_pickle_truncated, tiny_val_annotation_unknown_class, tiny_val_image_unlabelled,
]


@pytest.mark.parametrize("broken", BROKEN, ids=lambda f: f.__name__)
def test_cli_prepare_reports_one_line_and_writes_nothing(tmp_path, run_cli, broken):
    source, pattern = broken(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, stdout, stderr = run_cli("prepare", source, "--out", out_dir / "ds.pt")
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith("tam data prepare: error: ")
    assert re.search(pattern, stderr), stderr
    assert list(out_dir.iterdir()) == []  # no cache, no temporary file


@pytest.mark.parametrize("broken", BROKEN[1:4] + BROKEN[5:8], ids=lambda f: f.__name__)
def test_load_dataset_raises_and_leaves_the_cache_dir_empty(tmp_path, broken):
    source, pattern = broken(tmp_path)
    cache_dir = tmp_path / "cache"
    with pytest.raises(UserError, match=pattern):
        load_dataset(source, cache_dir=cache_dir)
    assert not cache_dir.exists() or list(cache_dir.iterdir()) == []


def test_cache_of_another_source_is_refused(tmp_path, run_cli):
    a = write(imagefolder_files(seed=1)[0], tmp_path / "a.tar.gz", "tar.gz")
    b = write(imagefolder_files(seed=2)[0], tmp_path / "b.tar.gz", "tar.gz")
    out = tmp_path / "ds.pt"
    assert run_cli("prepare", a, "--out", out)[0] == 0
    before = out.read_bytes()
    code, _, stderr = run_cli("prepare", b, "--out", out)
    assert code == 2 and stderr.count("\n") == 1
    assert re.search(r"ds\.pt: holds the cache of another source \(.*a\.tar\.gz\), not of .*b\.tar\.gz; "
                     r"delete it or replace it with `tam data prepare --overwrite`", stderr), stderr
    assert out.read_bytes() == before
    code, stdout, _ = run_cli("prepare", a, "--out", out)
    assert code == 0 and stdout.startswith("up to date")
    assert run_cli("prepare", b, "--out", out, "--force")[0] == 0
    assert prepare(b, out)[0].source.endswith("b.tar.gz")


def test_automatic_cache_from_another_source_is_refused(tmp_path):
    a = write(imagefolder_files(seed=1)[0], tmp_path / "data.tar.gz", "tar.gz")
    cache_dir = tmp_path / "cache"
    load_dataset(a, cache_dir=cache_dir)
    (cached,) = cache_dir.iterdir()
    other = write(imagefolder_files(seed=2)[0], tmp_path / "other.tar.gz", "tar.gz")
    prepare(other, cached, force=True)  # someone overwrote the keyed file
    with pytest.raises(UserError, match=r"holds the cache of another source \(.*other\.tar\.gz\), not of .*data\.tar\.gz; delete it"):
        load_dataset(a, cache_dir=cache_dir)


def test_existing_file_that_is_not_a_cache_is_not_overwritten(tmp_path, run_cli):
    source = write(imagefolder_files()[0], tmp_path / "s.tar.gz", "tar.gz")
    out = tmp_path / "precious.pt"
    out.write_text("my notes")
    code, _, stderr = run_cli("prepare", source, "--out", out)
    assert code == 2 and "precious.pt: exists and is not a tam dataset cache" in stderr
    assert out.read_text() == "my notes"


def test_broken_cache_files(tmp_path, run_cli):
    source = write(imagefolder_files()[0], tmp_path / "s.tar.gz", "tar.gz")
    good = tmp_path / "good.pt"
    prepare(source, good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:2000])
    for path, pattern in ((cut, r"cut\.pt: not a tam dataset cache|cut\.pt: unreadable dataset cache"),
                          (tmp_path / "none.pt", r"none\.pt: no such file")):
        code, _, stderr = run_cli("info", path)
        assert code == 2 and stderr.count("\n") == 1 and re.search(pattern, stderr), stderr
    import torch

    foreign = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(3)}, foreign)
    code, _, stderr = run_cli("info", foreign)
    assert code == 2 and "weights.pt: not a tam dataset cache" in stderr


def test_source_may_not_be_a_cache_for_prepare(tmp_path, run_cli):
    source = write(imagefolder_files()[0], tmp_path / "s.tar.gz", "tar.gz")
    prepare(source, tmp_path / "c.pt")
    code, _, stderr = run_cli("prepare", tmp_path / "c.pt", "--out", tmp_path / "d.pt")
    assert code == 2 and "c.pt: is already a prepared cache" in stderr


def test_read_only_source_location_is_fine(tmp_path):
    """The shared data folder is read-only in CI: nothing is ever written beside a source."""
    src = write(imagefolder_files()[0], tmp_path / "ro" / "s.tar.gz", "tar.gz")
    (tmp_path / "ro").chmod(0o555)
    try:
        load_dataset(src, cache_dir=tmp_path / "cache")
        assert sorted(p.name for p in (tmp_path / "ro").iterdir()) == ["s.tar.gz"]
    finally:
        (tmp_path / "ro").chmod(0o755)
        shutil.rmtree(tmp_path / "ro")
