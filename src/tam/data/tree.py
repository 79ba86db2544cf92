"""A read-only view of a source's files, the same for a folder and for a tar or zip archive.

Archives are never extracted: a tar is streamed once into memory (member name -> bytes), a zip is read member
by member. Member names are checked before anything is read: an absolute path, a ``..`` component, a link or a
special file is refused with an error naming the archive and the member. So a hostile archive can neither
write outside anything (nothing is written) nor point the reader at files outside itself. Sizes are checked
from the member headers before a byte is inflated: a member larger than :data:`MAX_MEMBER_BYTES` or members
adding up to more than :data:`MAX_TOTAL_BYTES` are refused, so a small archive cannot inflate to fill memory.
"""

from __future__ import annotations

import lzma
import os
import posixpath
import re
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

from tam.errors import UserError

# No file of a dataset source comes near these: a CIFAR python batch is 31 MB, a Tiny-ImageNet archive 0.5 GB.
MAX_MEMBER_BYTES = 256 * 2**20
MAX_TOTAL_BYTES = 8 * 2**30

_MAGIC = {
    b"\x1f\x8b": "tar",  # gzip: a .tar.gz
    b"BZh": "tar",
    b"\xfd7zXZ\x00": "tar",
    b"PK\x03\x04": "zip",
    b"PK\x05\x06": "zip",  # empty zip
}


def sniff(path: Path) -> str:
    """``"dir"``, ``"tar"``, ``"zip"`` or ``"unknown"`` from the path's content (never its extension)."""
    if path.is_dir():
        return "dir"
    with open(path, "rb") as handle:
        head = handle.read(512)
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return "unknown"


def walk_folder(path: Path) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` following links, in sorted order, each real folder once: a symlink loop ends, not recurses."""
    seen: set[str] = set()
    for top, dirnames, filenames in os.walk(path, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        yield top, dirnames, sorted(filenames)


def is_hidden(name: str) -> bool:
    """Hidden files and folders (``.DS_Store``, macOS ``._*`` forks, ``__MACOSX/``) are not part of a dataset."""
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def _safe_member_name(archive: Path, raw: str) -> str:
    name = raw.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UserError(f"{archive}: refused archive member {raw!r}: absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UserError(f"{archive}: refused archive member {raw!r}: '..' in its path")
    return posixpath.join(*parts) if parts else ""


class SourceTree:
    """Files of a source by relative POSIX path. Use as a context manager (a zip stays open until exit)."""

    def __init__(self, path: Path, kind: str):
        self.path = path
        self.kind = kind
        self.files: set[str] = set()
        self.dirs: set[str] = {""}
        self._blobs: dict[str, bytes] = {}  # tar: every file's bytes, read in one pass
        self._zip: zipfile.ZipFile | None = None
        self._zip_members: dict[str, zipfile.ZipInfo] = {}  # zip: read on demand
        self._index: dict[str, tuple[set[str], list[str]]] | None = None
        try:
            if kind == "dir":
                self._scan_folder()
            elif kind == "tar":
                self._read_tar()
            elif kind == "zip":
                self._open_zip()
            else:
                raise ValueError(kind)
        except Exception:
            self.close()
            raise
        closed = {""}  # folders whose ancestors are all in self.dirs
        for name in [*self.files, *self.dirs]:
            parent = posixpath.dirname(name)
            while parent not in closed:
                self.dirs.add(parent)
                closed.add(parent)
                parent = posixpath.dirname(parent)

    # -- construction -------------------------------------------------------------------------------------

    def _scan_folder(self) -> None:
        for top, _, filenames in walk_folder(self.path):
            rel = os.path.relpath(top, self.path).replace(os.sep, "/")
            rel = "" if rel == "." else rel
            self.dirs.add(rel)
            for filename in filenames:
                full = os.path.join(top, filename)
                try:
                    info = os.stat(full)
                except OSError as error:
                    raise UserError(f"{full}: cannot read ({error.strerror or error})") from None
                if stat.S_ISREG(info.st_mode):
                    self.files.add(posixpath.join(rel, filename))

    def _read_tar(self) -> None:
        try:
            total = 0
            with tarfile.open(self.path, "r:*") as archive:
                for member in archive:
                    name = _safe_member_name(self.path, member.name)
                    if member.isdir():
                        self.dirs.add(name)
                    elif member.isfile():
                        total = self._check_size(member.name, member.size, total)
                        if member.issparse():
                            self._blobs[name] = archive.extractfile(member).read()
                        else:  # what extractfile does, without its per-member objects (a third of the time)
                            archive.fileobj.seek(member.offset_data)
                            self._blobs[name] = archive.fileobj.read(member.size)
                            if len(self._blobs[name]) != member.size:
                                raise UserError(f"{self.path}: truncated or corrupt archive (member {member.name!r} is cut short)")
                        self.files.add(name)
                    elif member.issym() or member.islnk():
                        raise UserError(f"{self.path}: refused archive member {member.name!r}: a link")
                    else:
                        raise UserError(f"{self.path}: refused archive member {member.name!r}: not a regular file")
                self._check_tar_end(archive)
        except UserError:
            raise
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError, ValueError) as error:
            raise UserError(f"{self.path}: truncated or corrupt archive ({_reason(error)})") from None

    def _check_tar_end(self, archive: tarfile.TarFile) -> None:
        """tarfile ends its iteration quietly at a damaged header or a missing end marker, as if the archive
        were complete; so check that it stopped at a zero end-of-archive block followed only by zero padding.
        Reading to the end also makes gzip/bz2/xz verify their checksum."""
        stream = archive.fileobj
        stream.seek(archive.offset)
        block = stream.read(tarfile.BLOCKSIZE)
        if len(block) < tarfile.BLOCKSIZE:
            raise UserError(f"{self.path}: truncated or corrupt archive (it ends without an end-of-archive marker)")
        if block.strip(b"\0"):
            raise UserError(f"{self.path}: truncated or corrupt archive (damaged member header at byte {archive.offset})")
        while chunk := stream.read(1 << 20):
            if chunk.strip(b"\0"):
                raise UserError(f"{self.path}: truncated or corrupt archive (data after the end-of-archive marker)")

    def _check_size(self, member: str, size: int, total: int) -> int:
        """``total + size``, or a UserError when the member or the archive would inflate past the caps."""
        if size > MAX_MEMBER_BYTES:
            raise UserError(f"{self.path}: refused archive member {member!r}: it inflates to {size:,} bytes, more "
                            f"than the {MAX_MEMBER_BYTES:,} any file of a dataset source may have")
        if total + size > MAX_TOTAL_BYTES:
            raise UserError(f"{self.path}: refused: its members inflate to more than {MAX_TOTAL_BYTES:,} bytes, "
                            "more than a dataset source this reader holds in memory")
        return total + size

    def _open_zip(self) -> None:
        total = 0
        try:
            self._zip = zipfile.ZipFile(self.path)
            for info in self._zip.infolist():
                name = _safe_member_name(self.path, info.filename)
                kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no file type
                if info.is_dir():
                    self.dirs.add(name)
                elif kind == stat.S_IFLNK:
                    raise UserError(f"{self.path}: refused archive member {info.filename!r}: a link")
                elif kind not in (0, stat.S_IFREG):
                    raise UserError(f"{self.path}: refused archive member {info.filename!r}: not a regular file")
                else:
                    total = self._check_size(info.filename, info.file_size, total)
                    self.files.add(name)
                    self._zip_members[name] = info
        except UserError:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
            raise UserError(f"{self.path}: truncated or corrupt archive ({_reason(error)})") from None

    # -- reading ------------------------------------------------------------------------------------------

    def where(self, name: str) -> str:
        """How to name a file in a message: a path for folders, ``archive:member`` for archives."""
        if self.kind == "dir":
            return str(self.path / name) if name else str(self.path)
        return f"{self.path}:{name}" if name else str(self.path)

    def read(self, name: str) -> bytes:
        if name not in self.files:
            raise UserError(f"{self.where(name)}: missing")
        if self.kind == "dir":
            try:
                return (self.path / name).read_bytes()
            except OSError as error:
                raise UserError(f"{self.where(name)}: cannot read ({error.strerror or error})") from None
        if self.kind == "zip":
            try:
                return self._zip.read(self._zip_members[name])
            except (zipfile.BadZipFile, EOFError, OSError, zlib.error, RuntimeError, ValueError) as error:
                raise UserError(f"{self.where(name)}: truncated or corrupt archive member ({_reason(error)})") from None
        return self._blobs[name]

    def listdir(self, folder: str) -> tuple[list[str], list[str]]:
        """``(subfolders, files)`` directly inside ``folder`` (names only, hidden ones left out, sorted)."""
        if self._index is None:
            self._index = {}
            for d in self.dirs:
                if d:
                    self._index.setdefault(posixpath.dirname(d), (set(), []))[0].add(posixpath.basename(d))
            for f in self.files:
                self._index.setdefault(posixpath.dirname(f), (set(), []))[1].append(posixpath.basename(f))
        subdirs, files = self._index.get(folder, ((), ()))
        return sorted(d for d in subdirs if not is_hidden(d)), sorted(f for f in files if not is_hidden(f))

    def files_below(self, folder: str) -> dict[str, list[str]]:
        """Non-hidden files anywhere below ``folder``, grouped by the subfolder of ``folder`` they are in
        (key ``""`` for files directly inside it); each group in natural order of the full names."""
        prefix = f"{folder}/" if folder else ""
        groups: dict[str, list[str]] = {}
        for name in self.files:
            if name.startswith(prefix):
                rest = name[len(prefix) :]
                if not is_hidden(rest):
                    head, _, tail = rest.partition("/")
                    groups.setdefault(head if tail else "", []).append(name)
        return {key: sorted(names, key=natural_key) for key, names in groups.items()}

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self) -> SourceTree:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_DIGITS = re.compile(r"(\d+)")


def join(*parts: str) -> str:
    """Join tree paths, skipping empty parts (a dataset at the top of its tree has root ``""``)."""
    return "/".join(part for part in parts if part)


def natural_key(name: str) -> list:
    """Sort key that orders ``img2`` before ``img10`` (text and numbers alternate, so keys always compare)."""
    parts = _DIGITS.split(name)
    parts[1::2] = [int(part) for part in parts[1::2]]
    return parts


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())


def source_kind(path: Path) -> str:
    """:func:`sniff`'s kind of a source (``"dir"``, ``"tar"``, ``"zip"``), or a one-line :class:`UserError`."""
    kind = sniff(path)
    if kind == "unknown":
        raise UserError(
            f"{path}: not a dataset source (expected a folder, a .tar/.tar.gz/.zip archive or a prepared cache)"
        )
    return kind


def open_tree(path: Path) -> SourceTree:
    """Open a folder or archive as a :class:`SourceTree`, or fail with a one-line :class:`UserError`."""
    return SourceTree(path, source_kind(path))
