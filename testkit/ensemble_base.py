"""What the Apache ZooKeeper and trizab process ensembles share: their lifecycle.

Both are indexable lists of member processes with one connect string; ``start()``
starts every member, then waits for all of them within one deadline, and stops
them all if any fails; ``close()`` also removes the working directory when the
ensemble created it.  Only how members are built and how the leader is found
differ, so a test or benchmark can run one script against either.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

from trizab.runtime.launcher import member_mode as launcher_member_mode


class Member(Protocol):
    @property
    def address(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wait_ready(self, timeout: float) -> None: ...

    def get_logs(self, num_lines: int = 100) -> list[str]: ...


M = TypeVar("M", bound=Member)


def member_mode(member: Any) -> str | None:
    """leader / follower / observer / standalone, from ``srvr``; None when the member is stopped
    or does not answer.  Apache ZooKeeper and trizab print the same ``Mode:`` line, so this
    serves both launchers' members (anything with ``running`` and ``client_port``)."""
    return launcher_member_mode(member.client_port) if member.running else None


def clear_directory(path: Path, keep: Collection[str] = ()) -> None:
    """Delete everything in ``path`` except the entries named in ``keep`` (a lost disk, for tests)."""
    if not path.is_dir():
        return
    for entry in path.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


class OwnedWorkdir:
    """``close()`` (and ``with``) for a launcher with ``start``/``stop`` and a work directory.

    The directory is removed on close only when this object created it.
    """

    workdir: Path
    _own_workdir: bool

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop; remove the work directory if this object created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ProcessEnsemble(OwnedWorkdir, Generic[M]):
    """Members in ``self.members`` (set by the subclass), a work directory, a start deadline."""

    members: list[M]

    def __init__(self, workdir: str | os.PathLike[str] | None, *, prefix: str, start_timeout: float) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix=prefix)) if workdir is None else Path(workdir)
        self.start_timeout = start_timeout

    def __getitem__(self, index: int) -> M:
        return self.members[index]

    def __iter__(self) -> Iterator[M]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    @property
    def address(self) -> str:
        """The connect string: every member's address."""
        return ",".join(m.address for m in self.members)

    def _check_available(self) -> None:
        """Raise before anything starts if the servers cannot run here."""

    def start(self) -> None:
        """Start every member and wait until all serve (bounded by ``start_timeout``)."""
        self._check_available()
        try:
            for member in self.members:
                member.start()
            deadline = time.monotonic() + self.start_timeout
            for member in self.members:
                member.wait_ready(max(0.1, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def get_logs(self, num_lines: int = 100) -> list[str]:
        return [line for m in self.members for line in m.get_logs(num_lines)]
