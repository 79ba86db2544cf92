"""Run folders: a command writes only into a folder it owns, one writer at a time.

A folder a tam command writes (``tam train --out``, ``tam bench --out``, ...) holds ``tam-run.json``, a small
manifest naming the command, the tam version, when it was created and updated, the files the command wrote
and the run's status. While a command runs it holds an exclusive OS lock (``flock``) on ``.tam.lock`` inside the
folder: the OS drops it when the process dies, even by ``kill -9``, so a stale lock never blocks a new run, and
a second writer is refused with the first one's PID.

A command refuses, with one line naming the folder:

- an ``--out`` that is a file, or that equals, contains or lies inside one of its inputs;
- a non-empty folder that no tam command owns, or that another command owns, unless ``--overwrite``;
- ``--resume`` of a folder another command owns.

Example::

    with RunFolder.claim(out, command="train", resume=args.resume, overwrite=args.overwrite,
                         inputs=[config.data]) as run:
        ...write files into run.path...
        run.update(status="diverged")   # optional; "finished" is recorded on a clean exit

A folder written before manifests existed is adopted when one of ``adopts`` (globs, e.g. ``"config.yaml"``)
matches in it: ``--resume`` of an old ``tam train`` folder keeps working.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from tam.errors import UserError
from tam.files import remove_stale_temporaries, write_atomic, write_text_atomic

MANIFEST = "tam-run.json"
LOCK = ".tam.lock"
MANIFEST_FORMAT = 1
OVERWRITE_FLAG = "--overwrite"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _tam_version() -> str:
    from tam import __version__

    return __version__


def read_manifest(folder: str | Path) -> dict | None:
    """The manifest of ``folder``, ``None`` when it has none; an unreadable one is a UserError."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("command"), str):
        raise UserError(f"{path}: not a readable tam run manifest; pass {OVERWRITE_FLAG} to replace the folder's "
                        "run, or choose another --out")
    return manifest


def check_apart(out: str | Path, inputs: Iterable[str | Path | None], *, flag: str = "--out") -> None:
    """Refuse an output path equal to an input path, inside one, or holding one."""
    target = Path(out).resolve()
    for given in inputs:
        if given is None or str(given) == "":
            continue
        source = Path(given).expanduser()
        if not source.exists():
            continue  # a dataset name such as "cifar10", not a path
        source = source.resolve()
        if target == source:
            raise UserError(f"{flag} {out}: is the input {given}; choose an output path apart from the inputs")
        if target in source.parents:
            raise UserError(f"{flag} {out}: holds the input {given}; choose an output path apart from the inputs")
        if source in target.parents:
            raise UserError(f"{flag} {out}: lies inside the input {given}; choose an output path apart from the inputs")


def child(parent: str | Path, name: str, *, what: str, nested: bool = False) -> Path:
    """``parent / name``, refused unless it resolves to a path inside ``parent`` (``what`` names its origin).

    Names built from config or grid values go through here, so ``"../x"`` or ``"/abs"`` cannot lead out; unless
    ``nested``, the name must be one path component (no ``/``).
    """
    parent = Path(parent)
    if not name or "\0" in name or name in (".", "..") or (not nested and ("/" in name or os.sep in name)):
        raise UserError(f"{what}: {name!r} is not a usable file or folder name (one plain name, no '/')")
    path = parent / name
    inside = parent.resolve()
    if path.resolve() == inside or inside not in path.resolve().parents:
        raise UserError(f"{what}: {name!r} would lead outside {parent}; use a plain name")
    return path


class RunFolder:
    """A folder claimed by one command; use :meth:`claim`."""

    def __init__(self, path: Path, command: str, previous: dict | None, lock_fd: int):
        self.path = path
        self.command = command
        #: the manifest found on claiming (``None`` for a new or adopted folder)
        self.previous = previous
        self._lock_fd = lock_fd
        self._before = _listing(path)
        continued = previous if previous and previous["command"] == command else {}
        self.manifest = {
            "format": MANIFEST_FORMAT, "command": command, "tam_version": _tam_version(),
            "created": continued.get("created") or _now(), "updated": None, "pid": os.getpid(),
            "status": "running", "files": sorted(continued.get("files", [])),
        }

    @classmethod
    @contextlib.contextmanager
    def claim(cls, path: str | Path, *, command: str, resume: bool = False, overwrite: bool = False,
              inputs: Iterable[str | Path | None] = (), adopts: tuple[str, ...] = (),
              flag: str = "--out") -> Iterator["RunFolder"]:
        """Own ``path`` for ``command`` while the block runs (see the module docstring for what is refused).

        Args:
            path: the folder (created when missing).
            command: the command's name as the user types it, e.g. ``"train"``, ``"data bench"``.
            resume: the user asked to continue a run: only a folder of the same command.
            overwrite: the user allowed replacing what the folder holds: the files its previous owner recorded
                are removed first, and a folder no command owns may be written into.
            inputs: paths the command reads; the folder may not equal, contain or lie inside any of them.
            adopts: globs that mark a folder written by this command before manifests existed.
            flag: the option that named ``path``, for messages.

        On a clean exit the manifest records status ``"finished"`` (unless :meth:`update` set another) and the
        files that are new or changed; on an exception, ``"failed"`` (``"interrupted"`` for Ctrl-C), except that
        a run that fails before changing any file (a refusal) leaves the folder as it found it.
        """
        path = Path(path)
        if resume and overwrite:
            raise UserError(f"--resume continues a run and {OVERWRITE_FLAG} replaces it: pass one of them")
        if path.exists() and not path.is_dir():
            raise UserError(f"{flag} {path}: exists and is a file, not a folder; choose another {flag}")
        check_apart(path, inputs, flag=flag)
        created = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock(path, command, flag)
        try:
            previous = read_manifest(path) if not overwrite else _manifest_or_none(path)
            previous = _check_owner(path, command, previous, resume=resume, overwrite=overwrite, adopts=adopts,
                                    flag=flag)
            remove_stale_temporaries(path)
            run = cls(path, command, previous, lock_fd)
            run._untouched = (created, (path / MANIFEST).read_bytes() if (path / MANIFEST).is_file() else None)
            run._write_manifest()
        except BaseException:
            _unlock(path, lock_fd)
            raise
        try:
            yield run
        except KeyboardInterrupt:
            run._finish("interrupted")
            raise
        except BaseException:
            run._finish("failed")
            raise
        else:
            run._finish(None)

    def update(self, **fields) -> None:
        """Record ``fields`` (e.g. ``status="diverged"``, or a command's own details) in the manifest now."""
        self.manifest.update(fields)
        self._write_manifest()

    def _restore(self) -> None:
        """Put back the manifest found on claiming (none: remove ours, and the folder if the claim made it)."""
        created, manifest = self._untouched
        if manifest is not None:
            write_atomic(self.path / MANIFEST, lambda file: file.write(manifest))
            return
        (self.path / MANIFEST).unlink(missing_ok=True)
        if created:
            (self.path / LOCK).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.path.rmdir()  # only if empty

    def _write_manifest(self) -> None:
        self.manifest["updated"] = _now()
        write_text_atomic(self.path / MANIFEST, json.dumps(self.manifest, indent=2) + "\n")

    def _finish(self, status: str | None) -> None:
        try:
            after = _listing(self.path)
            changed = {name for name, stamp in after.items() if self._before.get(name) != stamp}
            if status is not None and not changed and after.keys() == self._before.keys() \
                    and self.manifest["status"] == "running":
                self._restore()
                return
            kept = {name for name in self.manifest["files"] if name in after}
            self.manifest["files"] = sorted(changed | kept)
            if self.manifest["status"] == "running":  # a status set by update() stands
                self.manifest["status"] = status or "finished"
            self._write_manifest()
        except OSError:
            if status is None:
                raise  # a clean run must say it could not record itself; a failing one keeps its own error
        finally:
            _unlock(self.path, self._lock_fd)


def _manifest_or_none(path: Path) -> dict | None:
    try:
        return read_manifest(path)
    except UserError:
        return None


def _check_owner(path: Path, command: str, previous: dict | None, *, resume: bool, overwrite: bool,
                 adopts: tuple[str, ...], flag: str) -> dict | None:
    """The manifest to continue from, after refusing what the user did not allow."""
    owner = previous["command"] if previous else None
    if overwrite:
        for name in (previous or {}).get("files", []):
            with contextlib.suppress(OSError, UserError):
                child(path, name, what=str(path / MANIFEST), nested=True).unlink()
        return None
    if owner == command:
        return previous
    if owner is None and not _listing(path):
        return None
    if owner is None and any(any(path.glob(pattern)) for pattern in adopts):  # written before manifests existed
        if resume:
            return None
        raise UserError(f"{flag} {path}: holds an earlier `tam {command}` run; pass --resume to continue it, "
                        f"{OVERWRITE_FLAG} to start afresh, or choose another {flag}")
    what = f"holds a `tam {owner}` run" if owner else "is not empty and no tam command owns it"
    if resume:
        raise UserError(f"{flag} {path}: {what}; --resume continues only a `tam {command}` folder")
    raise UserError(f"{flag} {path}: {what}; choose another {flag}, or pass {OVERWRITE_FLAG} to write into it")


def _listing(path: Path) -> dict[str, tuple[int, int]]:
    """Files below ``path`` (relative POSIX names -> (size, mtime_ns)), without the lock, temporaries and the
    contents of nested run folders (their own manifests speak for them)."""
    files = {}
    for top, dirnames, filenames in os.walk(path):
        if top != str(path) and MANIFEST in filenames:
            dirnames[:] = []
            files[os.path.relpath(top, path).replace(os.sep, "/") + "/"] = (0, 0)
            continue
        for filename in filenames:
            if filename in (LOCK, MANIFEST) or filename.endswith(".tmp"):
                continue
            full = os.path.join(top, filename)
            try:
                info = os.stat(full)
            except OSError:
                continue
            files[os.path.relpath(full, path).replace(os.sep, "/")] = (info.st_size, info.st_mtime_ns)
    return files


def _lock(path: Path, command: str, flag: str) -> int:
    """An exclusive lock on ``path/.tam.lock`` (which then holds our PID), or a UserError naming the holder."""
    lock_path = path / LOCK
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UserError(f"{flag} {path}: in use by another tam process (PID {holder}); wait for it to "
                                f"finish or choose another {flag}") from None
            raise
        # The previous holder may have removed the file between our open and our lock: then retry on a new one.
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} tam {command}\n".encode(), 0)
    return fd


def _unlock(path: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        (path / LOCK).unlink()  # while still locked, so a waiting claimer sees a new file and retries
    os.close(fd)
