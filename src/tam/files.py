"""Atomic writes: write a sibling ``<name>.<pid>.tmp``, flush it to disk, then rename it over the target.

A reader (or a resumed run) therefore sees either the previous complete file or the new complete file,
never a torn one, even if the process is killed mid-write. Every file tam writes for a user goes through here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, IO


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on ``<path>.<pid>.tmp`` opened for binary writing, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Per process, so that ranks or runs writing the same file never share a temporary.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed or interrupted write leaves nothing behind
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda file: file.write(text.encode()))
