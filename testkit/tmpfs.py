"""A small tmpfs mount for disk-full tests (root only): the disk fills up for real.

``SmallDisk(path, size)`` mounts a tmpfs of ``size`` bytes on ``path``; ``fill()``
writes a filler file until the disk is full, ``free()`` removes it, and the
mount is undone on exit.  tmpfs makes fsync a no-op, which is fine for what these
tests check: that a write the disk had no room for is neither acknowledged nor
lost track of, and that writing resumes once there is space.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path
from types import TracebackType

__all__ = ["SmallDisk"]


class SmallDisk:
    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.filler = path / "filler"

    def __enter__(self) -> SmallDisk:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.path)], check=True
        )
        return self

    def fill(self) -> int:
        """Fill the disk up; the bytes written."""
        written = 0
        chunk = b"\0" * 4096
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                try:
                    written += os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    return written
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)
