"""Untrusted files stay harmless: hostile archive members are refused, crafted pickles run nothing."""

import io
import os
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
from tam_data_builders import cifar10_files, cifar100_files, imagefolder_files, py2_pickle, write

from tam.data import load_dataset, read_source
from tam.data.safe_pickle import safe_loads
from tam.errors import UserError


def _tar_with(tmp_path, extra: tarfile.TarInfo, data: bytes = b"x") -> "os.PathLike":
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, blob in imagefolder_files()[0].items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))
        extra.size = len(data) if extra.isfile() else 0
        archive.addfile(extra, io.BytesIO(data) if extra.isfile() else None)
    return path


@pytest.mark.parametrize("name, why", [
    ("../../escaped.txt", "'..' in its path"),
    ("train/cat/../../../escaped.txt", "'..' in its path"),
    ("/tmp/escaped.txt", "absolute path"),
])
def test_tar_member_outside_the_archive_is_refused(tmp_path, name, why):
    path = _tar_with(tmp_path, tarfile.TarInfo(name))
    with pytest.raises(UserError, match=rf"evil\.tar\.gz: refused archive member '{name}': {why}"):
        load_dataset(path, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "escaped.txt").exists() and not list((tmp_path).glob("**/escaped.txt"))
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_links_are_refused(tmp_path, kind):
    info = tarfile.TarInfo("train/cat/link.png")
    info.type, info.linkname = kind, "/etc/passwd"
    with pytest.raises(UserError, match=r"refused archive member 'train/cat/link\.png': a link"):
        read_source(_tar_with(tmp_path, info))


def test_tar_device_file_is_refused(tmp_path):
    info = tarfile.TarInfo("train/cat/dev")
    info.type = tarfile.CHRTYPE
    with pytest.raises(UserError, match=r"'train/cat/dev': not a regular file"):
        read_source(_tar_with(tmp_path, info))


@pytest.mark.parametrize("name, why", [("../escaped.png", "'..' in its path"), ("/abs/escaped.png", "absolute path")])
def test_zip_member_outside_the_archive_is_refused(tmp_path, name, why):
    path = write(imagefolder_files()[0], tmp_path / "evil.zip", "zip")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(name, b"x")
    with pytest.raises(UserError, match=rf"evil\.zip: refused archive member '{name}': {why}"):
        read_source(path)


def test_zip_symlink_is_refused(tmp_path):
    path = write(imagefolder_files()[0], tmp_path / "evil.zip", "zip")
    info = zipfile.ZipInfo("train/cat/link.png")
    info.external_attr = (0o120777 << 16)  # S_IFLNK
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(UserError, match=r"'train/cat/link\.png': a link"):
        read_source(path)


# -- crafted pickles ---------------------------------------------------------------------------------------


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Evaluates:
    def __reduce__(self):
        return eval, ("__import__('os').getpid()",)


def _crafted_batches(tmp_path, payload):
    """The CIFAR-10 release with data_batch_1's labels replaced by ``payload``."""
    files, _ = cifar10_files()
    batch = {"batch_label": "x", "labels": payload, "data": np.zeros((2, 3072), np.uint8), "filenames": ["a", "b"]}
    files["cifar-10-batches-py/data_batch_1"] = pickle.dumps(batch, protocol=2)
    return write(files, tmp_path / "c.tar.gz", "tar.gz")


def test_pickle_that_runs_a_command_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    source = _crafted_batches(tmp_path, _RunsCommand(marker))
    with pytest.raises(UserError, match=r"c\.tar\.gz:cifar-10-batches-py/data_batch_1: refused posix\.system"):
        load_dataset(source, cache_dir=tmp_path / "cache")
    assert not marker.exists()
    # and the same pickle really would have run it (the test is not vacuous)
    pickle.loads(pickle.dumps(_RunsCommand(marker)))
    assert marker.exists()


@pytest.mark.parametrize("payload, refused", [
    (_Evaluates(), "__builtin__.eval"),  # protocol 2 names builtins as Python 2 did
    (io.BytesIO(b""), "_io.BytesIO"),
    (np.int64(3), "numpy"),  # a numpy scalar: not in the official files, refused all the same
    (np.array([object()], dtype=object), "numpy dtype 'O8'"),
])
def test_pickle_with_any_other_object_is_refused(tmp_path, payload, refused):
    source = _crafted_batches(tmp_path, payload)
    with pytest.raises(UserError, match=rf"data_batch_1: refused .*({refused})"):
        read_source(source)


def test_object_dtype_array_is_refused():
    with pytest.raises(pickle.UnpicklingError, match="refused numpy dtype"):
        safe_loads(pickle.dumps(np.array([1, "a"], dtype=object), protocol=2))


def test_codecs_encode_only_with_latin1():
    assert safe_loads(pickle.dumps({b"k": b"\xff\x00"}, protocol=2)) == {b"k": b"\xff\x00"}  # what Python 3 writes
    crafted = b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00aX\x0a\x00\x00\x00zlib_codec\x86R."
    with pytest.raises(pickle.UnpicklingError, match="refused _codecs.encode"):
        safe_loads(crafted)


def test_official_style_pickles_load_without_the_restrictions_getting_in_the_way(tmp_path):
    for files, _ in (cifar10_files(), cifar100_files()):
        for name, blob in files.items():
            if not name.endswith(".html"):
                assert isinstance(safe_loads(blob), dict)
    assert safe_loads(py2_pickle({"data": np.arange(6, dtype=np.uint8).reshape(2, 3)}))[b"data"].sum() == 15
