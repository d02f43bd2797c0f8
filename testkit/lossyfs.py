"""A FUSE passthrough that keeps only what was fsynced: power loss for crash tests.

Theory of operation
-------------------
``LossyFS`` mounts a backing directory somewhere else (mfusepy over libfuse 3) and
passes every operation through to it, while it keeps, on the side, the *durable*
state a disk would hold after a power cut.  A ``crash`` command (sent over a Unix
socket, see :class:`LossyMount`) rebuilds the backing directory from that durable
state, dropping everything that was never made durable.  Kill every process that
uses the mount first: ``crash`` waits until no file on it is open.

The durability model, per file (inode) and per directory:

* **File contents.**  Writes and size changes go to the backing file at once (so
  reads see them) and are remembered as unsynced ranges.  ``fsync`` or
  ``fdatasync`` of any descriptor of the file makes its whole current content
  durable (it is copied, sparsely, into a shadow copy).  On crash the file gets
  its shadow content back; a file that was never fsynced comes back **empty**.
* **Directory entries.**  ``create``, ``mkdir``, ``rename``, ``unlink``,
  ``rmdir``, ``link`` and ``symlink`` change the backing directory at once, but
  the durable entries of a directory (name -> inode) are replaced by its current
  ones only when that directory is fsynced.  On crash every directory gets its
  durable entries back, recursively from the mount's root.  So a file created
  and fsynced in a directory that is never fsynced is gone; a rename that is not
  followed by an fsync of the directory is undone (the old name comes back with
  the old inode and *its* durable content); a renamed file that was never
  fsynced itself comes back empty; a new directory whose parent was never
  fsynced is gone with everything in it.  The root of the mount and whatever the
  backing directory held at mount time start durable.

Why this is at least as strict as ext4 and POSIX.  POSIX (``fsync(2)``) promises
only that fsync makes the file's data durable, and Linux's man page adds that
"fsync() on a file descriptor for the directory" is needed for the entry of a
newly created file; a rename is durable only once its directory is fsynced.  This
model grants exactly that and nothing more.  ext4 gives more in practice (its
journal commits metadata operations in order, so an fsync of one file also makes
earlier creates, mkdirs and renames durable, and ``auto_da_alloc`` flushes a file
replaced by rename); a program that passes here does not rely on any of it.
Where real disks can do worse, this model is gentler: it never tears a single
fsynced write, never reorders pages inside an unsynced range (unsynced data is
dropped whole, which is one of the outcomes a disk may produce), and keeps
metadata (mode, times) untouched.  Extended attributes, ``fallocate`` and
``mknod`` are not supported (not implemented: the kernel answers ENOSYS).

``crash <seed>`` is the torn variant: the durable state as above, but for every file
that is still linked, each 4 KiB page written since its last fsync survives or not at
random (seeded), and so does its unsynced size: a disk that wrote back part of the
page cache, in any order, before the power went.  (Directory entries stay as above.)

The mount uses ``attr_timeout=0,entry_timeout=0,negative_timeout=0`` so that the
kernel asks again after a crash instead of serving cached names or sizes, and
``hard_remove`` so that unlinking an open file leaves no ``.fuse_hidden*`` entry.

Run as a process of its own::

    python -m testkit.lossyfs BACKING MOUNTPOINT --control SOCKET [--no-loss]

``--no-loss`` keeps everything on ``crash`` (the same process, but a disk that never
loses data): a check that a harness's findings come from lost data and not from
the harness itself.  :class:`LossyMount` starts it, waits for the mount, sends
``crash``/``stats`` and unmounts with ``fusermount3 -u``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import random
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger("lossyfs")

__all__ = ["LossyMount", "LossyMountError", "fuse_usable"]

PAGE = 4096

_STAT_KEYS = (
    "st_mode",
    "st_ino",
    "st_nlink",
    "st_uid",
    "st_gid",
    "st_size",
    "st_atime_ns",
    "st_mtime_ns",
    "st_ctime_ns",
    "st_blocks",
)


def _copy_range(src: int, dst: int, start: int, end: int) -> None:
    """Copy bytes [start, end) of ``src`` to the same offsets of ``dst``, skipping holes."""
    pos = start
    while pos < end:
        try:
            pos = os.lseek(src, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return  # only a hole is left
            raise
        if pos >= end:
            return
        try:
            hole = min(os.lseek(src, pos, os.SEEK_HOLE), end)
        except OSError:
            hole = end
        while pos < hole:
            chunk = os.pread(src, min(1 << 20, hole - pos), pos)
            if not chunk:
                return
            os.pwrite(dst, chunk, pos)
            pos += len(chunk)


class _File:
    """The durability bookkeeping of one inode (file, directory or symlink)."""

    __slots__ = ("durable_entries", "has_shadow", "kind", "ranges", "target", "trunc_low")

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "file", "dir" or "symlink"
        self.ranges: list[tuple[int, int]] = []  # written since the last fsync
        self.trunc_low: int | None = None  # lowest size set since the last fsync
        self.has_shadow = False  # durable content exists in the shadow directory
        self.durable_entries: dict[str, int] = {}  # directories: name -> node id
        self.target = ""  # symlinks


def _operations_base() -> type:
    import mfusepy  # imported late: without libfuse the module still imports

    return mfusepy.Operations  # type: ignore[no-any-return]


class LossyOperations(_operations_base()):  # type: ignore[misc]
    """The mfusepy operations: passthrough to ``backing`` plus the durability model above."""

    use_ns = True

    def __init__(self, backing: Path, shadow: Path, *, lossy: bool = True) -> None:
        self.backing = backing
        self.shadow = shadow
        self.lossy = lossy
        self._lock = threading.Condition(threading.RLock())
        self._nodes: dict[int, _File] = {}
        self._by_ino: dict[int, int] = {}  # backing st_ino -> node id (current inodes only)
        self._fh_node: dict[int, int] = {}  # open descriptor -> node id
        self._next_id = 1
        self.root_id = 0
        self.counters = {"fsyncs": 0, "dir_fsyncs": 0, "writes": 0, "crashes": 0}
        self._torn: tuple[random.Random, dict[int, str]] | None = None
        self._adopt_all()

    # -- bookkeeping -------------------------------------------------------

    def _real(self, path: str) -> str:
        return os.path.join(self.backing, path.lstrip("/"))

    def _new_node(self, ino: int, kind: str) -> int:
        node = self._next_id
        self._next_id += 1
        self._nodes[node] = _File(kind)
        self._by_ino[ino] = node
        return node

    def _node_of(self, real: str) -> int:
        st = os.lstat(real)
        node = self._by_ino.get(st.st_ino)
        if node is None:  # cannot happen for entries made through the mount; be safe
            node = self._new_node(st.st_ino, _kind(st.st_mode))
        return node

    def _adopt_all(self) -> None:
        """Take everything now in the backing directory as durable (at mount and after a crash)."""
        if self.shadow.exists():
            shutil.rmtree(self.shadow)
        self.shadow.mkdir(parents=True)
        self._nodes.clear()
        self._by_ino.clear()
        self.root_id = self._new_node(os.lstat(self.backing).st_ino, "dir")
        self._adopt_dir(str(self.backing), self.root_id)

    def _adopt_dir(self, real: str, node: int) -> None:
        entries: dict[str, int] = {}
        for name in os.listdir(real):
            child = os.path.join(real, name)
            st = os.lstat(child)
            known = self._by_ino.get(st.st_ino)
            if known is not None:  # a hard link to an inode adopted already
                entries[name] = known
                continue
            kind = _kind(st.st_mode)
            child_node = self._new_node(st.st_ino, kind)
            entries[name] = child_node
            if kind == "dir":
                self._adopt_dir(child, child_node)
            elif kind == "symlink":
                self._nodes[child_node].target = os.readlink(child)
            else:
                fd = os.open(child, os.O_RDONLY)
                try:
                    self._save_shadow(child_node, fd, full=True)
                finally:
                    os.close(fd)
        self._nodes[node].durable_entries = entries

    def _shadow_path(self, node: int) -> str:
        return os.path.join(self.shadow, str(node))

    def _save_shadow(self, node: int, fd: int, *, full: bool) -> None:
        """Make the current content of ``node`` (read through ``fd``) its durable content."""
        info = self._nodes[node]
        size = os.fstat(fd).st_size
        out = os.open(self._shadow_path(node), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if full or not info.has_shadow:
                os.ftruncate(out, 0)
                os.ftruncate(out, size)
                _copy_range(fd, out, 0, size)
            else:
                if info.trunc_low is not None:
                    os.ftruncate(out, min(info.trunc_low, os.fstat(out).st_size))
                os.ftruncate(out, size)
                for start, end in _merged(info.ranges):
                    if start < size:
                        _copy_range(fd, out, start, min(end, size))
        finally:
            os.close(out)
        info.has_shadow = True
        info.ranges = []
        info.trunc_low = None

    def _written(self, node: int, start: int, end: int) -> None:
        info = self._nodes[node]
        info.ranges.append((start, end))
        if len(info.ranges) > 4096:
            info.ranges = _merged(info.ranges)

    def _truncated(self, node: int, length: int) -> None:
        info = self._nodes[node]
        info.trunc_low = length if info.trunc_low is None else min(info.trunc_low, length)

    # -- crash ---------------------------------------------------------------

    def crash(self, timeout: float = 20.0, torn_seed: int | None = None) -> dict[str, Any]:
        """Revert the backing directory to its durable state (see the module docstring).

        With ``torn_seed``, each unsynced 4 KiB page of a file that is still linked in the
        backing directory, and the file's unsynced size, survive or not at random (seeded):
        a disk that wrote back some of the page cache before the power went.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._fh_node:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"{len(self._fh_node)} file(s) still open on the mount")
                self._lock.wait(left)
            self.counters["crashes"] += 1
            if not self.lossy:
                return {"reverted": False}
            self._torn = None
            if torn_seed is not None:
                self._torn = (random.Random(torn_seed), self._current_files())
            staging = Path(tempfile.mkdtemp(prefix="rebuild-", dir=self.shadow.parent))
            try:
                made: dict[int, str] = {}
                self._materialize(self.root_id, str(staging), made, top=True)
                for name in os.listdir(self.backing):
                    _remove(os.path.join(self.backing, name))
                for name in os.listdir(staging):
                    os.rename(os.path.join(staging, name), os.path.join(self.backing, name))
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            self._adopt_all()
            return {"reverted": True, "files": len(self._nodes)}

    def _materialize(self, node: int, real: str, made: dict[int, str], *, top: bool = False) -> None:
        info = self._nodes[node]
        if node in made and info.kind != "dir":
            os.link(made[node], real)
            return
        if info.kind == "dir":
            if not top:
                if node in made:  # one directory reachable twice: keep the first, drop the loop
                    return
                os.mkdir(real)
            made[node] = real
            for name, child in info.durable_entries.items():
                self._materialize(child, os.path.join(real, name), made)
        elif info.kind == "symlink":
            os.symlink(info.target, real)
            made[node] = real
        else:
            fd = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                if info.has_shadow:  # else never fsynced: empty (pessimistic)
                    src = os.open(self._shadow_path(node), os.O_RDONLY)
                    try:
                        size = os.fstat(src).st_size
                        os.ftruncate(fd, size)
                        _copy_range(src, fd, 0, size)
                    finally:
                        os.close(src)
                if self._torn is not None and node in self._torn[1]:
                    self._tear(node, fd, self._torn[1][node], self._torn[0])
            finally:
                os.close(fd)
            made[node] = real

    def _current_files(self) -> dict[int, str]:
        """Node id -> backing path of every regular file now linked in the backing directory."""
        found: dict[int, str] = {}
        for top, _dirs, files in os.walk(self.backing):
            for name in files:
                path = os.path.join(top, name)
                st = os.lstat(path)
                node = self._by_ino.get(st.st_ino)
                if node is not None and stat.S_ISREG(st.st_mode):
                    found[node] = path
        return found

    def _tear(self, node: int, fd: int, current: str, rng: random.Random) -> None:
        """Let a random part of ``node``'s unsynced writes (page by page) and size through."""
        info = self._nodes[node]
        if not info.ranges and info.trunc_low is None:
            return
        src = os.open(current, os.O_RDONLY)
        try:
            current_size = os.fstat(src).st_size
            size = rng.choice((os.fstat(fd).st_size, current_size))
            os.ftruncate(fd, size)
            for start, end in _merged(info.ranges):
                for page in range(start - start % PAGE, min(end, size, current_size), PAGE):
                    if rng.random() < 0.5:
                        _copy_range(src, fd, page, min(page + PAGE, size, current_size))
        finally:
            os.close(src)

    # -- FUSE operations -------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = os.fstat(fh) if fh else os.lstat(self._real(path))
        return {key: getattr(st, key) for key in _STAT_KEYS}

    def access(self, path: str, amode: int) -> int:
        if not os.access(self._real(path), amode):
            raise OSError(errno.EACCES, "access")
        return 0

    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._real(path), mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        os.chown(self._real(path), uid, gid)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        if times is None:
            os.utime(self._real(path))
        else:
            os.utime(self._real(path), ns=times)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self._real(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files")
        out = {key: getattr(sv, key) for key in keys}
        out.update(f_frsize=sv.f_frsize, f_namemax=sv.f_namemax, f_flag=sv.f_flag)
        return out

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._real(path))]

    def readlink(self, path: str) -> str:
        return os.readlink(self._real(path))

    def mkdir(self, path: str, mode: int) -> int:
        real = self._real(path)
        with self._lock:
            os.mkdir(real, mode)
            self._new_node(os.lstat(real).st_ino, "dir")
        return 0

    def rmdir(self, path: str) -> int:
        with self._lock:
            os.rmdir(self._real(path))
        return 0

    def unlink(self, path: str) -> int:
        with self._lock:
            os.unlink(self._real(path))
        return 0

    def rename(self, old: str, new: str) -> int:
        with self._lock:
            os.rename(self._real(old), self._real(new))
        return 0

    def link(self, target: str, source: str) -> int:
        with self._lock:
            os.link(self._real(source), self._real(target))
        return 0

    def symlink(self, target: str, source: str) -> int:
        real = self._real(target)
        with self._lock:
            os.symlink(source, real)
            node = self._new_node(os.lstat(real).st_ino, "symlink")
            self._nodes[node].target = source
        return 0

    def _open_backing(self, real: str, flags: int, mode: int = 0o644) -> int:
        # Always readable (fsync copies through this descriptor); never O_APPEND, because
        # the kernel gives every write its offset and Linux pwrite ignores it with O_APPEND.
        flags &= ~os.O_APPEND
        try:
            return os.open(real, (flags & ~os.O_ACCMODE) | os.O_RDWR, mode)
        except IsADirectoryError:
            raise
        except PermissionError:
            return os.open(real, flags, mode)

    def create(self, path: str, mode: int, flags: int = os.O_WRONLY) -> int:
        real = self._real(path)
        with self._lock:
            existed = os.path.lexists(real)
            fd = self._open_backing(real, flags | os.O_CREAT, mode)
            ino = os.fstat(fd).st_ino
            node = self._by_ino.get(ino) if existed else None
            if node is None:
                node = self._new_node(ino, "file")
            elif flags & os.O_TRUNC:
                self._truncated(node, 0)
            self._fh_node[fd] = node
        return fd

    def open(self, path: str, flags: int) -> int:
        real = self._real(path)
        with self._lock:
            fd = self._open_backing(real, flags)
            node = self._node_of(real)
            if flags & os.O_TRUNC:
                self._truncated(node, 0)
            self._fh_node[fd] = node
        return fd

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self._lock:
            n = os.pwrite(fh, data, offset)
            self._written(self._fh_node[fh], offset, offset + n)
            self.counters["writes"] += 1
        return n

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        with self._lock:
            if fh:
                os.ftruncate(fh, length)
                node = self._fh_node[fh]
            else:
                real = self._real(path)
                os.truncate(real, length)
                node = self._node_of(real)
            self._truncated(node, length)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    def release(self, path: str, fh: int) -> int:
        with self._lock:
            self._fh_node.pop(fh, None)
            os.close(fh)
            self._lock.notify_all()
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        with self._lock:
            os.fsync(fh)
            self._save_shadow(self._fh_node[fh], fh, full=False)
            self.counters["fsyncs"] += 1
        return 0

    def opendir(self, path: str) -> int:
        return 0

    def releasedir(self, path: str, fh: int) -> int:
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        real = self._real(path)
        with self._lock:
            node = self._node_of(real)
            self._nodes[node].durable_entries = {
                name: self._node_of(os.path.join(real, name)) for name in os.listdir(real)
            }
            self.counters["dir_fsyncs"] += 1
        return 0


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "file"


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


# -- the daemon ------------------------------------------------------------------


def _serve_control(ops: LossyOperations, sock: socket.socket) -> None:
    while True:
        conn, _ = sock.accept()
        with conn, conn.makefile("rwb") as stream:
            for line in stream:
                command = line.decode().strip()
                try:
                    if command == "crash" or command.startswith("crash "):
                        seed = command.split()[1] if " " in command else None
                        torn = int(seed) if seed is not None else None
                        answer: dict[str, Any] = {"ok": True, **ops.crash(torn_seed=torn)}
                    elif command == "stats":
                        with ops._lock:
                            answer = {"ok": True, **ops.counters, "open": len(ops._fh_node)}
                    elif command == "ping":
                        answer = {"ok": True}
                    else:
                        answer = {"ok": False, "error": f"unknown command {command!r}"}
                except Exception as exc:
                    log.exception("control command %s failed", command)
                    answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                stream.write(json.dumps(answer).encode() + b"\n")
                stream.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testkit.lossyfs", description=__doc__.split("\n")[0])
    parser.add_argument("backing", type=Path)
    parser.add_argument("mountpoint", type=Path)
    parser.add_argument("--control", type=Path, required=True, help="Unix socket for crash/stats")
    parser.add_argument("--shadow", type=Path, help="where durable copies are kept (default: beside backing)")
    parser.add_argument("--no-loss", action="store_true", help="crash keeps everything")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="lossyfs: %(levelname)s %(message)s")
    import mfusepy

    backing = args.backing.resolve()
    shadow = (args.shadow or backing.with_name(backing.name + ".durable")).resolve()
    ops = LossyOperations(backing, shadow, lossy=not args.no_loss)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        args.control.unlink()
    sock.bind(str(args.control))
    sock.listen(4)
    threading.Thread(target=_serve_control, args=(ops, sock), daemon=True).start()
    mfusepy.FUSE(
        ops,
        str(args.mountpoint),
        foreground=True,
        fsname="lossyfs",
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
        hard_remove=True,
    )
    return 0


# -- the parent's side -------------------------------------------------------------


class LossyMountError(RuntimeError):
    """The filesystem could not be mounted, answered an error, or did not unmount."""


def fuse_usable() -> str | None:
    """None if a LossyFS can be mounted here, else why not (for a test's skip reason)."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if shutil.which("fusermount3") is None:
        return "fusermount3 not installed (Debian package fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"mfusepy unusable: {exc}"
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
    except OSError as exc:
        return f"/dev/fuse cannot be opened: {exc}"
    os.close(fd)
    return None


class LossyMount:
    """A LossyFS daemon of our own: ``with LossyMount(workdir) as fs: ... fs.crash()``.

    ``fs.mountpoint`` is the mounted directory; ``workdir`` also holds the backing and
    shadow directories and the control socket.  Leaving the block unmounts
    (``fusermount3 -u``, retried, then lazily) and reaps the daemon (by its pid).
    """

    def __init__(self, workdir: str | os.PathLike[str], *, lossy: bool = True) -> None:
        self.workdir = Path(workdir)
        self.lossy = lossy
        self.backing = self.workdir / "backing"
        self.mountpoint = self.workdir / "mnt"
        self.control = self.workdir / "control.sock"
        self.log_path = self.workdir / "lossyfs.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> LossyMount:
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "testkit.lossyfs",
            str(self.backing),
            str(self.mountpoint),
            "--control",
            str(self.control),
        ]
        if not self.lossy:
            command.append("--no-loss")
        root = Path(__file__).resolve().parent.parent
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + timeout
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise LossyMountError(f"lossyfs did not mount:\n{self._log_tail()}")
            time.sleep(0.02)
        self.request("ping")
        return self

    def request(self, command: str, timeout: float = 60.0) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.control))
            sock.sendall(command.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        answer: dict[str, Any] = json.loads(data)
        if not answer.get("ok"):
            raise LossyMountError(f"lossyfs {command}: {answer.get('error')}")
        return answer

    def crash(self, torn_seed: int | None = None) -> dict[str, Any]:
        """Drop everything not durable (every process using the mount must be dead); with
        ``torn_seed``, let a seeded random part of the unsynced pages through instead."""
        return self.request("crash" if torn_seed is None else f"crash {torn_seed}")

    def stats(self) -> dict[str, Any]:
        return self.request("stats")

    def stop(self, timeout: float = 15.0) -> None:
        """Unmount and reap the daemon; never leaves the mount behind."""
        proc, self.proc = self.proc, None
        deadline = time.monotonic() + timeout
        while os.path.ismount(self.mountpoint):
            done = subprocess.run(
                ["fusermount3", "-u", str(self.mountpoint)], capture_output=True, check=False
            )
            if done.returncode == 0:
                break
            if time.monotonic() > deadline:
                subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False)
                break
            time.sleep(0.1)
        if proc is not None:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> LossyMount:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
