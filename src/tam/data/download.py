"""Optional download of the official CIFAR archives: resumable (HTTP ``Range``), checksum-verified.

Only for users with internet; nothing else in tam downloads. The file grows as ``<name>.part`` and is
renamed to its final name only once its size, SHA-256 and MD5 match, so a finished name always means a
verified file. An interrupted transfer keeps the ``.part`` and the next call asks the server for the rest;
a server that ignores ``Range`` (answers 200) is read again from the start.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tam.errors import UserError


@dataclass(frozen=True)
class Archive:
    url: str
    filename: str
    size: int
    sha256: str
    md5: str


# The checksums published for the official releases (https://www.cs.toronto.edu/~kriz/cifar.html gives the MD5s).
ARCHIVES = {
    "cifar10": Archive(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        filename="cifar-10-python.tar.gz",
        size=170_498_071,
        sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        md5="c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": Archive(
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        filename="cifar-100-python.tar.gz",
        size=169_001_437,
        sha256="85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
    ),
}
CHUNK = 1 << 20


def _digests(path: Path) -> tuple[str, str]:
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            sha256.update(block)
            md5.update(block)
    return sha256.hexdigest(), md5.hexdigest()


def _verified(path: Path, sha256: str | None, md5: str | None) -> str | None:
    """None when ``path`` matches the given digests, else what differs."""
    got_sha256, got_md5 = _digests(path)
    if sha256 and got_sha256 != sha256.lower():
        return f"sha256 {got_sha256}, expected {sha256}"
    if md5 and got_md5 != md5.lower():
        return f"md5 {got_md5}, expected {md5}"
    return None


def download(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` if present; verify; return ``dest``.

    Raises :class:`UserError` on a network failure (the partial file is kept for the next try) or a checksum
    mismatch (the partial file is deleted: it cannot be resumed into a good one).
    """
    if not url.startswith(("http://", "https://")):
        raise UserError(f"{url}: only http:// and https:// downloads are supported")
    dest = Path(dest)
    if dest.exists():
        if _verified(dest, sha256, md5) is None:
            return dest
        raise UserError(f"{dest}: exists but does not match the expected checksum; delete it and try again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "tam-data"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            if error.code != 416 or not offset:  # 416: nothing left to send: the part may be complete
                raise
            response = None
        if response is not None:
            with response:
                if offset and response.status != 206:  # the server ignored Range: start over
                    offset = 0
                total = response.headers.get("Content-Length")
                total = offset + int(total) if total and total.isdigit() else size
                with open(part, "ab" if offset else "wb") as handle:
                    done = offset
                    while block := response.read(CHUNK):
                        handle.write(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
                if total is not None and done < total:
                    raise http.client.IncompleteRead(b"", total - done)
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as error:
        have = part.stat().st_size if part.exists() else 0
        reason = getattr(error, "reason", None) or error
        raise UserError(
            f"{url}: download interrupted ({type(error).__name__}: {' '.join(str(reason).split())}); "
            f"{have} bytes kept in {part}, run again to resume"
        ) from None
    problem = _verified(part, sha256, md5)
    if problem is None and size is not None and part.stat().st_size != size:
        problem = f"{part.stat().st_size} bytes, expected {size}"
    if problem is not None:
        part.unlink()
        raise UserError(f"{url}: downloaded file is corrupt ({problem}); deleted it, run again")
    os.replace(part, dest)
    return dest


def download_dir(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "downloads"


def download_official(name: str, directory: str | Path, *, progress: bool = False) -> Path:
    """Fetch the official archive of ``name`` (``cifar10`` or ``cifar100``) into ``directory``."""
    if name not in ARCHIVES:
        raise UserError(f"{name}: no official archive known (choose from {', '.join(ARCHIVES)})")
    archive = ARCHIVES[name]

    def report(done: int, total: int | None) -> None:
        if total:
            sys.stderr.write(f"\r{archive.filename}: {done / 1e6:.1f} / {total / 1e6:.1f} MB")
            sys.stderr.flush()

    path = download(
        archive.url,
        Path(directory) / archive.filename,
        sha256=archive.sha256,
        md5=archive.md5,
        size=archive.size,
        progress=report if progress else None,
    )
    if progress:
        sys.stderr.write("\n")
    return path


def downloaded_archive(name: str, cache_dir: str | Path) -> Path:
    """The downloaded official archive for ``name``, or a :class:`UserError` saying how to get it."""
    if name in ARCHIVES:
        path = download_dir(cache_dir) / ARCHIVES[name].filename
        if path.exists():
            return path
        raise UserError(f"{name}: not downloaded yet; run `tam data download {name}` (or give the path of a source)")
    raise UserError(f"{name}: no such file or folder")
