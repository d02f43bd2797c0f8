"""One owner per data directory: an exclusive lock, and a write check, at start-up.

Why
---
Two servers on one ``dataDir`` both append to the same transaction log and
snapshot into the same place; each acknowledges its clients' writes, and after a
restart one of them finds the other's files and some acknowledged writes are
gone.  And a directory the server cannot write must stop it at start-up with the
reason, not at the first client's write with a traceback.

How
---
:func:`claim` takes each directory in turn: it creates it if missing, opens
(creating) the lock file :data:`LOCK_NAME` inside it, and takes an exclusive
``flock`` without waiting.  Then it writes its pid into the lock file, so that a
server that finds the lock taken can name the holder, and checks that the
directory is writable by really creating and removing a file in it: permission
bits say nothing for root, and a read-only mount or an immutable directory only
shows when one tries.  Any failure releases what was already taken and raises
:class:`DataDirError`, whose ``str()`` is one line.

``flock`` rather than ``fcntl``/``lockf`` record locks: an ``flock`` belongs to
the open file description, so two servers embedded in *one* process exclude each
other too (record locks are per process and would not), and it dies with the
descriptor: closing it releases the lock, and so does the process's death,
``kill -9`` included, so there is never a stale lock to clean up.  The
descriptor is close-on-exec, so a helper process the server starts (the
``txnlog`` engine's fsync helpers) does not inherit it.  The lock file is never
removed: unlinking a lock file lets a newcomer lock a fresh inode while an old
holder still holds the unlinked one.

The runtime's server takes the lock around its storage's lifetime (before
``open``, after ``close``), so a server embedded in a program is protected as
much as ``trizab serve``.  Only engines that keep data there (``durable``) get
it: the ``memory`` engine writes nothing to the directory.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from trizab import config as cfg

__all__ = ["LOCK_NAME", "DataDirError", "DirectoryLock", "claim", "config_directories", "holder_pid"]

LOCK_NAME = "trizab.lock"


class DataDirError(Exception):
    """A data directory cannot be owned by this server; ``str()`` is one line naming it."""


class DirectoryLock:
    """The locks :func:`claim` holds, one descriptor per directory; :meth:`release` closes them."""

    def __init__(self) -> None:
        self.held: list[tuple[Path, int]] = []

    def release(self) -> None:
        """Close every lock descriptor (which releases the locks); idempotent."""
        held, self.held = self.held, []
        for _path, fd in held:
            os.close(fd)

    def __enter__(self) -> DirectoryLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def config_directories(config: cfg.ServerConfig) -> list[tuple[str, Path]]:
    """``(key, path)`` for the dataDir and a dataLogDir that is another directory."""
    out: list[tuple[str, Path]] = []
    seen: set[Path] = set()
    for key, path in (("dataDir", config.data_dir), ("dataLogDir", config.data_log_dir)):
        if path is None:
            continue
        path = Path(os.path.abspath(path))
        if path.resolve() not in seen:  # the same directory (or a link to it) is locked once
            seen.add(path.resolve())
            out.append((key, path))
    return out


def claim(directories: Sequence[tuple[str, Path]]) -> DirectoryLock:
    """Create, lock and check each ``(key, path)``; all of them or none (see the module docstring)."""
    lock = DirectoryLock()
    try:
        for key, path in directories:
            lock.held.append((path, _claim_one(key, path)))
    except BaseException:
        lock.release()
        raise
    return lock


def holder_pid(path: Path) -> int | None:
    """The pid written in ``path``'s lock file (None: no file, or no pid in it yet)."""
    try:
        raw = (path / LOCK_NAME).read_bytes()
    except OSError:
        return None
    return _parse_pid(raw)


def _claim_one(key: str, path: Path) -> int:
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise DataDirError(f"cannot write to {key} {path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise DataDirError(f"cannot lock {key} {path}: {exc.strerror or exc}") from None
            pid = _parse_pid(os.pread(fd, 64, 0))
            holder = "pid unknown" if pid is None else f"pid {pid}"
            if pid == os.getpid():
                holder += ", this process"
            raise DataDirError(f"{key} {path} is in use by another trizab server ({holder})") from None
        try:
            _write_pid(fd)
            _check_writable(path)
        except OSError as exc:
            raise DataDirError(f"cannot write to {key} {path}: {exc.strerror or exc}") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_pid(fd: int) -> None:
    # Write, then cut: a reader never sees an empty file, at worst the new pid with the tail of
    # a longer old one on the next line, which _parse_pid ignores.
    data = f"{os.getpid()}\n".encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))


def _check_writable(path: Path) -> None:
    fd, name = tempfile.mkstemp(prefix=".trizab-write-check-", dir=path)
    os.close(fd)
    os.unlink(name)


def _parse_pid(raw: bytes) -> int | None:
    first = raw.split(b"\n", 1)[0].strip()
    return int(first) if first.isdigit() else None
