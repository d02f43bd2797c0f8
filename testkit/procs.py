"""Stopping (and pausing) a child server process: the one way every launcher here does it.

Always by the ``Popen`` we started (so by pid), never by name.  A paused (SIGSTOPped) child
still stops promptly: SIGTERM is followed by SIGCONT, which a running child ignores.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from typing import Any


def terminate_process(proc: subprocess.Popen[Any], grace: float) -> int | None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; return the exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
            # A stopped process only acts on SIGTERM once continued; otherwise it would sit out
            # the whole grace period before the SIGKILL.
            proc.send_signal(signal.SIGCONT)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            kill_process(proc)
    return proc.returncode


def kill_process(proc: subprocess.Popen[Any]) -> int | None:
    """SIGKILL at once (a crash) and reap it; return the exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
    return proc.returncode


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
