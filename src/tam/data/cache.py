"""Prepared-dataset caches: one file per dataset, written once, loaded in well under a second.

**Format.** A single ``torch.save`` file (a zip) of a dict of tensors and plain data — ``format``,
``version``, names, classes, the uint8 image tensors, int64 labels, normalisation, split sizes, the source path
and its fingerprint, creation time and tam version — so it loads with
``torch.load(weights_only=True, mmap=True)``: no code runs on load, and the images are memory-mapped, not
read. Its zip comment holds the SHA-256 of its bytes (:mod:`tam.verified`), checked on every load, so a cache
with a changed byte is refused; so is one whose labels or normalisation no loader could use. It is written to
a temporary file beside the target and renamed into place, so a failed or interrupted preparation never leaves
a partial cache behind.

**Fingerprint.** For an archive, ``sha256:`` + the SHA-256 of its bytes (0.03 s for the 19 MB CIFAR-10
archive). For a folder, ``tree-sha256:`` + the SHA-256 of every file's relative path, size and mtime (reading
every file would cost as much as preparing). A cache records the fingerprint of its source; the automatic
cache of a source is named after it, so an edited source is prepared again, and a cache that does not match
the source it is used for is an error.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import os
import re
import sys
import zipfile
from pathlib import Path

import torch

from tam.data.dataset import PreparedDataset
from tam.data.sources import read_source
from tam.data.tree import sniff, source_kind, walk_folder
from tam.errors import UserError
from tam.verified import load_verified, save_verified
from tam.runfolder import check_apart

FORMAT = "tam.data.prepared"
VERSION = 2  # 2: with a checksum (tam.verified); 1: without
ENV_CACHE_DIR = "TAM_CACHE_DIR"
_ARCHIVE_SUFFIX = re.compile(r"(\.tar)?(\.gz|\.tgz|\.bz2|\.xz|\.zip|\.tar)$", re.IGNORECASE)


def default_cache_dir() -> Path:
    """``$TAM_CACHE_DIR``, else ``$XDG_CACHE_HOME/tam``, else ``~/.cache/tam``."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "tam"
    return Path.home() / ".cache" / "tam"


def fingerprint(path: str | Path) -> str:
    """A digest of a raw source: of its bytes for a file, of file names, sizes and mtimes for a folder."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for top, _, filenames in walk_folder(path):
            rel = os.path.relpath(top, path).replace(os.sep, "/")
            for filename in filenames:
                try:
                    info = os.stat(os.path.join(top, filename))
                except OSError as error:
                    raise UserError(f"{os.path.join(top, filename)}: cannot read ({error.strerror or error})") from None
                digest.update(f"{rel}/{filename}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
        return f"tree-sha256:{digest.hexdigest()}"
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def is_cache_file(path: str | Path) -> bool:
    """True when ``path`` is a ``torch.save`` file (a zip with a ``data.pkl`` record) — a cache candidate."""
    path = Path(path)
    if not path.is_file() or sniff(path) != "zip":
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.count("/") == 1 and name.endswith("/data.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def cache_path_for(source: str | Path, source_fingerprint: str, cache_dir: str | Path | None = None) -> Path:
    """Where the automatic cache of ``source`` lives: ``<cache_dir>/<source name>-<digest>.pt``."""
    stem = _ARCHIVE_SUFFIX.sub("", Path(source).resolve().name) or "dataset"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)
    key = hashlib.sha256(f"{source_fingerprint}|{FORMAT}|{VERSION}".encode()).hexdigest()[:16]
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{stem}-{key}.pt"


def save_cache(ds: PreparedDataset, path: str | Path) -> Path:
    """Write ``ds`` to ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    state = {
        "format": FORMAT,
        "version": VERSION,
        "name": ds.name,
        "source_format": ds.source_format,
        "source": ds.source,
        "fingerprint": ds.fingerprint,
        "classes": list(ds.classes),
        "coarse_classes": list(ds.coarse_classes) if ds.coarse_classes is not None else None,
        "test_split": ds.test_split,
        "augment": ds.augment,
        "mean": list(ds.mean),
        "std": list(ds.std),
        "pixel_mean": list(ds.pixel_mean),
        "pixel_std": list(ds.pixel_std),
        "splits": {"train": len(ds.train_labels), "test": len(ds.test_labels)},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tam_version": _tam_version(),
        # clone(): torch.save writes whole storages, so never save a view into something bigger
        "train_images": ds.train_images.contiguous().clone(),
        "train_labels": ds.train_labels.to(torch.int64).clone(),
        "test_images": ds.test_images.contiguous().clone(),
        "test_labels": ds.test_labels.to(torch.int64).clone(),
        "train_coarse_labels": None if ds.train_coarse_labels is None else ds.train_coarse_labels.clone(),
        "test_coarse_labels": None if ds.test_coarse_labels is None else ds.test_coarse_labels.clone(),
    }
    try:
        save_verified(state, path)
    except OSError as error:
        raise UserError(f"{path}: cannot write the cache ({error.strerror or error})") from None
    return path


def _read_state(path: Path) -> dict:
    """The validated dict of a cache file (tensors memory-mapped)."""
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not is_cache_file(path):
        raise UserError(f"{path}: not a tam dataset cache (prepare one with `tam data prepare SOURCE --out FILE`)")
    unverified = []
    state = load_verified(path, what="dataset cache", mmap=True, on_unverified=lambda: unverified.append(True))
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not a tam dataset cache (a torch file of something else)")
    if state.get("version") != VERSION:
        raise UserError(
            f"{path}: dataset cache of format version {state.get('version')}, this tam reads version {VERSION}; "
            "prepare it again"
        )
    if unverified:
        raise UserError(f"{path}: dataset cache without its checksum: the file was altered; prepare it again")
    missing = [key for key in _FIELDS + _TENSORS if key not in state]
    if missing:
        raise UserError(f"{path}: incomplete dataset cache (no {missing[0]!r})")
    _check_contents(path, state)
    return state


def _check_contents(path: Path, state: dict) -> None:
    """Refuse a cache whose contents no loader could use: shapes, label range, normalisation."""
    classes = state["classes"]
    if not isinstance(classes, list) or not classes:
        raise UserError(f"{path}: corrupt dataset cache (no class names)")
    for split in ("train", "test"):
        images, labels = state[f"{split}_images"], state[f"{split}_labels"]
        if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor) or \
                images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3 or \
                labels.dim() != 1 or len(images) != len(labels):
            raise UserError(f"{path}: corrupt dataset cache ({split} images and labels do not match)")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
            raise UserError(f"{path}: corrupt dataset cache ({split} labels outside 0..{len(classes) - 1}, "
                            f"the {len(classes)} classes)")
    for key in ("mean", "std"):
        values = state[key]
        if not isinstance(values, (list, tuple)) or len(values) != 3 or \
                not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise UserError(f"{path}: corrupt dataset cache ({key} {values!r} is not three finite numbers)")
    if not all(v > 0 for v in state["std"]):
        raise UserError(f"{path}: corrupt dataset cache (std {state['std']!r}: each must be positive)")


_FIELDS = (
    "name", "classes", "mean", "std", "augment", "source_format", "source", "fingerprint", "test_split",
    "pixel_mean", "pixel_std", "coarse_classes",
)
_TENSORS = (
    "train_images", "train_labels", "test_images", "test_labels", "train_coarse_labels", "test_coarse_labels",
)


def load_cache(path: str | Path) -> PreparedDataset:
    """Load a cache written by :func:`save_cache` (memory-mapped; nothing is executed)."""
    state = _read_state(Path(path))
    fields = {key: state[key] for key in _FIELDS + _TENSORS}
    for key in ("mean", "std", "pixel_mean", "pixel_std"):
        fields[key] = tuple(fields[key])
    return PreparedDataset(**fields)


def cache_info(path: str | Path) -> dict:
    """What ``tam data info`` shows: the plain data of a cache, its image shape and file size."""
    path = Path(path)
    state = _read_state(path)
    info = {key: value for key, value in state.items() if not isinstance(value, torch.Tensor) and value is not None}
    info["image_shape"] = list(state["train_images"].shape[1:])
    info["path"] = str(path)
    info["bytes"] = path.stat().st_size
    return info


def prepare(
    source: str | Path,
    out: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    force: bool = False,
    workers: int | None = None,
    announce: bool = False,
) -> tuple[PreparedDataset, Path, bool]:
    """Prepare raw ``source`` into the cache file ``out``; returns ``(dataset, path, written)``.

    ``announce``: say on stderr, before decoding, that the cache is being written (decoding a large source takes a
    while, and a command that prepares it on first use would otherwise sit silent).

    Without ``out``, the cache is the automatic one in ``cache_dir`` (see :func:`cache_path_for`). If the
    file already holds the cache of this very source (same fingerprint), it is loaded, not written again; if
    it holds anything else, that is an error unless ``force``.
    """
    source = Path(source)
    _check_raw_source(source)
    source_fingerprint = fingerprint(source)
    flag = "--out" if out is not None else "--cache-dir"
    out = Path(out) if out is not None else cache_path_for(source, source_fingerprint, cache_dir)
    check_apart(out, [source], flag=flag)
    if out.is_dir():
        raise UserError(f"{out}: is a folder; --out names the cache file to write")
    if out.exists() and not force:
        if not is_cache_file(out):
            raise UserError(f"{out}: exists and is not a tam dataset cache; refusing to overwrite it (use --overwrite)")
        existing = load_cache(out)
        if existing.fingerprint != source_fingerprint:
            raise UserError(
                f"{out}: holds the cache of another source ({existing.source}), not of {source}; "
                "delete it or replace it with `tam data prepare --overwrite`"
            )
        return existing, out, False
    if announce:
        print(f"preparing {source} into the cache {out} (once: later runs load it)", file=sys.stderr, flush=True)
    ds = read_source(source, workers=workers)
    ds.fingerprint = source_fingerprint
    ds.source = str(source.resolve())
    save_cache(ds, out)
    return ds, out, True


def load_dataset(source: str | Path, *, cache_dir: str | Path | None = None) -> PreparedDataset:
    """A :class:`PreparedDataset` from a raw source (prepared on first use, then cached) or a cache file.

    Args:
        source: a cache file written by ``tam data prepare``; or a raw source — a folder or archive of the
            CIFAR-10/100 python release, Tiny-ImageNet, or an image-folder tree; or ``"cifar10"`` /
            ``"cifar100"`` once ``tam data download`` has fetched the official archive.
        cache_dir: where raw sources are cached, keyed by their fingerprint
            (default: ``$TAM_CACHE_DIR``, else ``~/.cache/tam``).
    """
    path = Path(source).expanduser()
    if not path.exists():
        from tam.data.download import downloaded_archive

        path = downloaded_archive(str(source), cache_dir if cache_dir is not None else default_cache_dir())
    if is_cache_file(path):
        return load_cache(path)
    return prepare(path, cache_dir=cache_dir, announce=True)[0]


def _check_raw_source(path: Path) -> None:
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if path.is_file() and is_cache_file(path):
        raise UserError(f"{path}: is already a prepared cache, not a raw source")
    source_kind(path)  # an unknown file is refused now, before anything is announced or fingerprinted


def _tam_version() -> str:
    import tam

    return getattr(tam, "__version__", "unknown")
