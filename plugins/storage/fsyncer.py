"""fdatasync in a helper process, so that the event loop never waits on the disk.

Theory of operation
-------------------
Group commit (ZooKeeper's ``SyncRequestProcessor``) only pays off if requests
keep being read, prepared and logged *while* the previous batch is being made
durable.  ZooKeeper gets that from a thread.  A Python thread does not: the
fdatasync itself releases the GIL, but getting the GIL back from a busy event
loop, and trio's hand-off around it, cost more than the fdatasync (measured on
the project machine, setData at 16 outstanding: 15,200/s inline, 11,300/s with
the sync in a thread, 19,800/s with it in a helper process).

fdatasync acts on the file (the inode), whichever descriptor names it, so a
helper process that opened the same segment can make the server's writes
durable.  The server writes a batch's records into the page cache itself,
sends the segment's path down the helper's stdin, and goes on serving; the
helper answers one byte on its stdout once fdatasync returned, and the event
loop waits for that byte like for any socket.  No GIL is shared.

Protocol, over two pipes: a request is ``u32 length + path bytes``; the answer
is ``b"."`` (durable) or ``b"!"`` followed by the error text, after which the
helper exits.  The helper keeps the last segment's descriptor open (opened
before any record it must flush was written: errors of later writeback are
reported to it), ignores SIGINT (the server decides when it ends) and exits at
EOF on its stdin, which is also what happens when the server dies, so a
``kill -9`` of the server leaves no helper behind.

This file is also the helper's program: it is run as a script, with only the
standard library (``python -I -S fsyncer.py``).
"""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys

__all__ = ["FsyncHelper", "FsyncHelperGone"]

_LEN = struct.Struct(">I")
_OK = b"."
_FAILED = b"!"


class FsyncHelperGone(Exception):
    """The helper process ended without answering (killed, or it could not start)."""


class FsyncHelper:
    """The server's side of one helper process, which runs one sync at a time."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._requests = self._proc.stdin.fileno()
        self._answers = self._proc.stdout.fileno()
        os.set_blocking(self._answers, False)
        self.pid = self._proc.pid
        self.in_flight = False

    @property
    def fileno(self) -> int:
        """Turns readable when the sync in flight may have finished."""
        return self._answers

    def request(self, path: str | os.PathLike[str]) -> None:
        """Ask for an fdatasync of ``path`` (everything written to it so far)."""
        assert not self.in_flight, "one sync at a time"
        raw = os.fsencode(path)
        try:
            _write_all(self._requests, _LEN.pack(len(raw)) + raw)
        except OSError as exc:  # EPIPE: the helper is gone
            raise FsyncHelperGone(f"fsync helper {self.pid} is gone ({exc})") from None
        self.in_flight = True

    def poll(self) -> bool:
        """Non-blocking: True once the requested fdatasync returned.

        Raises OSError if the fdatasync failed, FsyncHelperGone if the helper died.
        """
        try:
            answer = os.read(self._answers, 1)
        except BlockingIOError:
            return False
        return self._answered(answer)

    def wait(self) -> None:
        """Block until the requested fdatasync returned (same errors as :meth:`poll`)."""
        while not self.poll():
            select.select([self._answers], [], [])

    def _answered(self, answer: bytes) -> bool:
        self.in_flight = False
        if answer == _OK:
            return True
        if answer == _FAILED:
            os.set_blocking(self._answers, True)
            message = self._proc.stdout.read().decode("utf-8", "replace") if self._proc.stdout else ""
            raise OSError(f"fdatasync in fsync helper {self.pid} failed: {message.strip()}")
        raise FsyncHelperGone(f"fsync helper {self.pid} ended (exit status {self._proc.poll()})")

    def close(self) -> None:
        """End the helper (EOF on its stdin) and reap it."""
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, n: int) -> bytes | None:
    out = b""
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            return None
        out += chunk
    return out


def _helper_main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests, answers = 0, 1
    current: tuple[bytes, int] | None = None
    while True:
        head = _read_exactly(requests, _LEN.size)
        if head is None:
            return 0
        path = _read_exactly(requests, _LEN.unpack(head)[0])
        if path is None:
            return 0
        try:
            if current is None or current[0] != path:
                if current is not None:
                    os.close(current[1])
                current = (path, os.open(path, os.O_RDONLY))
            os.fdatasync(current[1])
        except OSError as exc:
            _write_all(answers, _FAILED + f"{os.fsdecode(path)}: {exc}".encode("utf-8", "replace"))
            return 1
        _write_all(answers, _OK)


if __name__ == "__main__":
    sys.exit(_helper_main())
