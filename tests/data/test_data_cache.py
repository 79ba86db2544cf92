"""Caches: written once, atomically, keyed by the source fingerprint, loaded memory-mapped; the CLI around them."""

import json
import os
import time
import zipfile

import pytest
import torch
from tam_data_builders import assert_matches, cifar100_files, imagefolder_files, tinyimagenet_files, write

from tam import cli
from tam.data import fingerprint, load_cache, load_dataset, prepare
from tam.data import cache as cache_module


@pytest.fixture
def run_cli(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMANDS", {"data": cli.COMMANDS["data"]})

    def run(*args):
        code = cli.main(["data", *map(str, args)])
        return (code, *capsys.readouterr())

    return run


@pytest.mark.parametrize("build", [cifar100_files, tinyimagenet_files, imagefolder_files], ids=lambda f: f.__name__)
def test_cache_round_trip_is_exact(tmp_path, build):
    files, expected = build()
    source = write(files, tmp_path / "src.tar.gz", "tar.gz")
    ds, path, written = prepare(source, tmp_path / "ds.pt")
    assert written and path == tmp_path / "ds.pt"
    loaded = load_cache(tmp_path / "ds.pt")
    assert_matches(loaded, expected)
    for field in ("name", "classes", "mean", "std", "augment", "source_format", "source", "fingerprint",
                  "test_split", "pixel_mean", "pixel_std", "coarse_classes"):
        assert getattr(loaded, field) == getattr(ds, field), field
    assert loaded.fingerprint == fingerprint(source) and loaded.source == str(source.resolve())
    if ds.coarse_classes:
        assert torch.equal(loaded.test_coarse_labels, ds.test_coarse_labels)


def test_cache_is_a_weights_only_torch_file(tmp_path):
    source = write(imagefolder_files()[0], tmp_path / "s.zip", "zip")
    prepare(source, tmp_path / "ds.pt")
    state = torch.load(tmp_path / "ds.pt", weights_only=True, mmap=True)
    assert state["format"] == "tam.data.prepared" and state["splits"] == {"train": 9, "test": 6}
    assert state["train_images"].dtype == torch.uint8
    assert (tmp_path / "ds.pt").stat().st_mode & 0o044  # readable like any file, not mkstemp's 0600


def test_load_dataset_prepares_once_then_reuses(tmp_path, monkeypatch, capsys):
    files, expected = imagefolder_files()
    source = write(files, tmp_path / "data.tar.gz", "tar.gz")
    cache_dir = tmp_path / "cache"
    first = load_dataset(source, cache_dir=cache_dir)
    (cached,) = cache_dir.iterdir()
    assert cached.name.startswith("data-") and cached.suffix == ".pt"
    # a command that prepares on first use says so before the decode, instead of sitting silent
    assert capsys.readouterr().err == f"preparing {source} into the cache {cached} (once: later runs load it)\n"
    monkeypatch.setattr(cache_module, "read_source", lambda *a, **k: pytest.fail("prepared twice"))
    second = load_dataset(source, cache_dir=cache_dir)
    assert_matches(second, expected)
    assert torch.equal(first.train_images, second.train_images)
    assert_matches(load_dataset(cached), expected)  # a cache file is a source too
    assert capsys.readouterr().err == ""


def test_default_cache_dir_is_tam_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TAM_CACHE_DIR", str(tmp_path / "here"))
    load_dataset(write(imagefolder_files()[0], tmp_path / "s.tar.gz", "tar.gz"))
    assert len(list((tmp_path / "here").glob("s-*.pt"))) == 1
    monkeypatch.delenv("TAM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_module.default_cache_dir() == tmp_path / "xdg" / "tam"


def test_changed_source_is_prepared_again(tmp_path):
    files, _ = imagefolder_files()
    source = write(files, tmp_path / "src")
    cache_dir = tmp_path / "cache"
    load_dataset(source, cache_dir=cache_dir)
    extra = source / "train" / "cat" / "img9.png"
    extra.write_bytes(files["train/cat/img0.png"])
    assert len(load_dataset(source, cache_dir=cache_dir).train_labels) == 10
    assert len(list(cache_dir.iterdir())) == 2


def test_fingerprint(tmp_path):
    files, _ = imagefolder_files()
    archive = write(files, tmp_path / "a.tar.gz", "tar.gz")
    assert fingerprint(archive).startswith("sha256:") and fingerprint(archive) == fingerprint(archive)
    folder = write(files, tmp_path / "f")
    before = fingerprint(folder)
    assert before.startswith("tree-sha256:") and before == fingerprint(folder)
    target = folder / "test" / "dog" / "img0.png"
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert fingerprint(folder) != before


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    source = write(imagefolder_files()[0], tmp_path / "s.tar.gz", "tar.gz")
    out_dir = tmp_path / "out"

    def explode(obj, file):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.torch, "save", explode)
    with pytest.raises(KeyboardInterrupt):
        prepare(source, out_dir / "ds.pt")
    assert list(out_dir.iterdir()) == []


def test_loading_a_cache_runs_no_code(tmp_path, monkeypatch):
    """A cache is loaded with weights_only: a torch file carrying a pickled callable is refused."""
    monkeypatch.chdir(tmp_path)
    source = write(imagefolder_files()[0], tmp_path / "s.tar.gz", "tar.gz")
    good = tmp_path / "ds.pt"
    prepare(source, good)
    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(evil, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("/data.pkl"):
                data = b"\x80\x02cos\nsystem\nX\x0b\x00\x00\x00touch pwned\x85R."
            dst.writestr(item, data)
    from tam.errors import UserError

    with pytest.raises(UserError, match="evil.pt: refused: this dataset cache holds non-tensor Python objects, "
                                        "which tam never loads") as error:
        load_cache(evil)
    assert "weights_only" not in str(error.value)  # tam's words, not PyTorch's advice to load it anyway
    assert not (tmp_path / "pwned").exists()


def test_cli_prepare_and_info(tmp_path, run_cli):
    source = write(cifar100_files()[0], tmp_path / "cifar-100-python.tar.gz", "tar.gz")
    code, out, err = run_cli("prepare", source, "--out", tmp_path / "c100.pt")
    assert code == 0 and err == ""
    assert out.startswith("prepared cifar100 (cifar-python): train 12, test 6, 100 classes, 3x32x32 -> ")
    code, out, _ = run_cli("info", tmp_path / "c100.pt")
    assert code == 0
    assert "cifar100, read from the cifar-python format" in out and "train 12, test 6" in out
    assert "100: fine_00, fine_01" in out and "coarse classes  20" in out and "augment         cifar" in out
    assert "(the constants training uses)" in out and "not the measured statistics" in out
    code, out, _ = run_cli("info", tmp_path / "c100.pt", "--json")
    info = json.loads(out)
    assert info["splits"] == {"train": 12, "test": 6} and info["image_shape"] == [3, 32, 32]
    assert info["fingerprint"] == fingerprint(source) and len(info["coarse_classes"]) == 20


def test_cli_prepare_into_the_automatic_cache(tmp_path, run_cli):
    source = write(imagefolder_files()[0], tmp_path / "pets.zip", "zip")
    code, out, _ = run_cli("prepare", source, "--cache-dir", tmp_path / "cache")
    (cached,) = (tmp_path / "cache").iterdir()
    assert code == 0 and str(cached) in out
    assert load_dataset(source, cache_dir=tmp_path / "cache").fingerprint == fingerprint(source)
