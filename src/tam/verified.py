"""Checksummed torch files: checkpoints, kept weights and dataset caches say when a byte of them changed.

A verified file is a plain ``torch.save`` zip (``torch.load`` reads it as usual, memory-mapped or not) whose
zip comment holds ``tam-sha256:<hex>``, the SHA-256 of every byte ``torch.save`` wrote. :func:`load_verified`
recomputes it before it trusts a byte: one flipped bit anywhere, a truncated copy or a file spliced from two
others is refused with one line, before anything is loaded. Loading is ``weights_only``: tensors and plain data
only, so no pickled code runs.

Example::

    save_verified({"model": model.state_dict()}, run / "weights.pt")
    state = load_verified(run / "weights.pt", what="weights")
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import IO, Any, Callable

import torch

from tam.errors import UserError
from tam.files import write_atomic

SIGNATURE = b"tam-sha256:"
_END_RECORD = b"PK\x05\x06"  # the zip's end-of-central-directory record: 22 bytes, then the comment
_END_RECORD_SIZE = 22
_COMMENT_SIZE = len(SIGNATURE) + 64


class _HashingWriter:
    """What ``torch.save`` writes into ``file``, hashed on the way; remembers a write error (ENOSPC...) that
    torch would otherwise turn into an opaque RuntimeError."""

    def __init__(self, file: IO[bytes]):
        self.file, self.digest, self.error = file, hashlib.sha256(), None

    def write(self, data) -> int:
        try:
            written = self.file.write(data)
        except OSError as error:
            self.error = error
            raise
        self.digest.update(data)
        return written

    def flush(self) -> None:
        self.file.flush()


def _save(obj: Any, file: IO[bytes]) -> None:
    writer = _HashingWriter(file)
    try:
        torch.save(obj, writer)
    except Exception:
        if writer.error is not None:
            raise writer.error from None
        raise
    comment = SIGNATURE + writer.digest.hexdigest().encode()
    file.seek(-2, os.SEEK_END)  # the end record's comment length, which torch leaves at 0
    file.write(len(comment).to_bytes(2, "little") + comment)


def save_verified(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically, with the checksum that :func:`load_verified` checks."""
    return write_atomic(path, lambda file: _save(obj, file))


def checksum_status(path: str | Path) -> bool | None:
    """``True`` when ``path`` carries a checksum that matches, ``None`` when it carries none (written by torch
    or by an older tam), ``False`` when it carries one that does not match. Reads the whole file once."""
    path = Path(path)
    with open(path, "rb") as file:
        size = file.seek(0, os.SEEK_END)
        tail_size = _END_RECORD_SIZE + _COMMENT_SIZE
        if size < tail_size:
            return None
        file.seek(size - tail_size)
        tail = file.read()
        if not (tail.startswith(_END_RECORD) and tail[_END_RECORD_SIZE:].startswith(SIGNATURE)
                and int.from_bytes(tail[20:22], "little") == _COMMENT_SIZE):
            return None
        digest = hashlib.sha256()
        file.seek(0)
        remaining = size - _COMMENT_SIZE - 2
        while remaining > 0:
            block = file.read(min(1 << 22, remaining))
            if not block:
                return False
            digest.update(block)
            remaining -= len(block)
        digest.update(b"\0\0")
    return digest.hexdigest().encode() == tail[_END_RECORD_SIZE + len(SIGNATURE):]


def load_verified(path: str | Path, *, what: str, mmap: bool = False,
                  on_unverified: Callable[[], None] | None = None) -> Any:
    """The object :func:`save_verified` wrote to ``path``, after checking its checksum.

    Args:
        what: what the file is, for messages (``"checkpoint"``, ``"dataset cache"``).
        mmap: memory-map the tensors instead of reading them.
        on_unverified: for a file without a checksum (written by an older tam or by plain ``torch.save``):
            ``None`` refuses it; a callable is called and the file loaded (the caller decides what to say).

    Raises:
        UserError: one line naming the file, for a missing, damaged, unreadable or refused file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such {what} file")
    status = checksum_status(path)
    if status is False:
        raise UserError(f"{path}: damaged {what}: its contents do not match the checksum written with it (a "
                        "changed, truncated or corrupted copy); restore it from a good copy or write it again")
    if status is None:
        if on_unverified is None:
            raise UserError(f"{path}: not a {what} written by this tam (it carries no tam checksum)")
        on_unverified()
    return load_plain(path, what=what, mmap=mmap)


def load_plain(path: Path, *, what: str, mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` with its failures stated as one line in tam's words."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        raise UserError(f"{path}: refused: this {what} holds non-tensor Python objects, which tam never loads "
                        "(loading them could run code); use a file tam wrote") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as error:
        if isinstance(error, OSError) and not isinstance(error, zipfile.BadZipFile) and error.errno is not None:
            raise
        reason = " ".join(str(error).split()) or type(error).__name__
        raise UserError(f"{path}: not a readable {what} ({reason[:160]})") from None
