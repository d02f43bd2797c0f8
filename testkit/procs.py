"""Stopping (and pausing) a child server process: the one way every launcher here does it.

Always by the ``Popen`` we started (so by pid), never by name.  A paused (SIGSTOPped) child
still stops promptly: SIGTERM is followed by SIGCONT, which a running child ignores.
"""

from __future__ import annotations

import signal
import subprocess

# The one implementation of both ships with the package's launcher.
from trizab.testing.process import kill_process, terminate_process

__all__ = ["ChildProcess", "kill_process", "terminate_process"]


class ChildProcess:
    """``running``, ``pid``, stop, kill, pause and resume of a launcher that keeps its ``Popen``
    in ``self.process``."""

    process: subprocess.Popen[bytes] | None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the data directory stays."""
        if self.process is not None:
            terminate_process(self.process, grace)
        self.process = None

    def kill(self) -> None:
        """SIGKILL (a crash), keeping the data directory."""
        if self.process is not None:
            kill_process(self.process)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP the process (by its pid): it keeps its sockets but answers nothing."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause` (harmless when not paused)."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)
