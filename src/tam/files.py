"""Atomic writes: write a sibling ``<name>.<pid>.tmp``, flush it to disk, then rename it over the target.

A reader (or a resumed run) therefore sees either the previous complete file or the new complete file,
never a torn one, even if the process is killed mid-write. Every file tam writes for a user goes through here.
A writer killed mid-write (``kill -9``) leaves its temporary behind; the next write of the same file, and every
claim of a run folder, removes the temporaries of writers that no longer run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, IO


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on ``<path>.<pid>.tmp`` opened for binary writing, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    # Per process, so that ranks or runs writing the same file never share a temporary.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as error:
        if error.filename is not None:
            raise
        raise OSError(error.errno, error.strerror, str(path)) from None  # a full disk names the file it hit
    finally:
        tmp.unlink(missing_ok=True)  # a failed or interrupted write leaves nothing behind
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda file: file.write(text.encode()))


_TEMPORARY = re.compile(r"^(?P<name>.+)\.(?P<pid>\d+)\.tmp$")


def remove_stale_temporaries(folder: str | Path, name: str | None = None) -> list[Path]:
    """Delete ``<name>.<pid>.tmp`` files in ``folder`` (of any name when ``name`` is None) whose writing process
    no longer runs; returns what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not match or (name is not None and match["name"] != name) or _running(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass  # another cleaner got it first, or we may not: either way it is not ours to report
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OverflowError:
        return False  # no process has such a PID
    except PermissionError:
        return True  # another user's process
    return True
