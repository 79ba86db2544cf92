"""Sources and caches that once cost memory or a traceback (issue #17): inflation bombs, symlink loops, caches
with impossible contents or a changed byte, and a cache written over its own source."""

import gzip
import hashlib
import os
import tarfile
import zipfile

import pytest
import torch
from tam_data_builders import cifar10_files, imagefolder_files, write

from tam.data import load_dataset
from tam.data import tree
from tam.data.cache import fingerprint, load_cache, prepare
from tam.errors import UserError
from tam.verified import load_verified, save_verified


def test_a_member_that_would_inflate_to_a_gibibyte_is_refused_before_it_is_read(tmp_path):
    header = tarfile.TarInfo("train/cat/huge.png")
    header.size = 2**30
    bomb = tmp_path / "bomb.tar.gz"
    bomb.write_bytes(gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT) + bytes(4096)))
    assert bomb.stat().st_size < 10_000
    with pytest.raises(UserError, match=r"refused archive member 'train/cat/huge.png': it inflates to "
                                        r"1,073,741,824 bytes"):
        load_dataset(bomb, cache_dir=tmp_path / "cache")


def test_zip_members_and_totals_are_capped(tmp_path, monkeypatch):
    files = imagefolder_files()[0]
    source = write(files, tmp_path / "s.zip", kind="zip")
    largest = max(len(blob) for blob in files.values())
    monkeypatch.setattr(tree, "MAX_MEMBER_BYTES", largest - 1)
    with pytest.raises(UserError, match="it inflates to"):
        load_dataset(source, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(tree, "MAX_MEMBER_BYTES", largest)
    monkeypatch.setattr(tree, "MAX_TOTAL_BYTES", 2 * largest)
    with pytest.raises(UserError, match="its members inflate to more than"):
        load_dataset(source, cache_dir=tmp_path / "cache")


def test_a_symlink_loop_in_a_folder_source_ends(tmp_path):
    source = write(imagefolder_files()[0], tmp_path / "src")
    os.symlink(source / "train", source / "train" / "cat" / "loop")
    assert fingerprint(source).startswith("tree-sha256:")
    dataset = load_dataset(source, cache_dir=tmp_path / "cache")
    assert len(dataset.train_labels) == 9


@pytest.fixture
def cache(tmp_path):
    source = write(cifar10_files(per_batch=2, test=4)[0], tmp_path / "c.tar.gz", kind="tar.gz")
    return prepare(source, tmp_path / "c.pt")[1]


@pytest.mark.parametrize("change, says", [
    (lambda s: s["train_labels"].fill_(10), "train labels outside 0..9"),
    (lambda s: s["test_labels"].fill_(-1), "test labels outside 0..9"),
    (lambda s: s.update(std=[0.2, 0.0, 0.2]), "each must be positive"),
    (lambda s: s.update(mean=[float("nan"), 0.0, 0.0]), "is not three finite numbers"),
])
def test_a_cache_with_impossible_contents_is_refused(cache, change, says):
    state = {key: value.clone() if isinstance(value, torch.Tensor) else value
             for key, value in load_verified(cache, what="dataset cache").items()}
    change(state)
    save_verified(state, cache)  # a consistent checksum: the contents themselves are wrong
    with pytest.raises(UserError, match=says):
        load_cache(cache)


def test_a_changed_byte_in_a_cache_is_refused_and_prepare_never_overwrites_its_source(cache, tmp_path):
    data = bytearray(cache.read_bytes())
    data[len(data) // 2] ^= 0x04
    cache.write_bytes(bytes(data))
    with pytest.raises(UserError, match="damaged dataset cache"):
        load_cache(cache)
    source = tmp_path / "c.tar.gz"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    with pytest.raises(UserError, match="is the input"):
        prepare(source, source, force=True)
    folder = write(imagefolder_files()[0], tmp_path / "tree")
    with pytest.raises(UserError, match="lies inside the input"):
        prepare(folder, folder / "cache.pt")
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest and not (folder / "cache.pt").exists()
    assert zipfile.is_zipfile(cache)
