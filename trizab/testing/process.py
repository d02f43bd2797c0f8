"""Run a real ``trizab serve`` process in a test: the launcher behind the pytest fixtures.

Synchronous on purpose (``subprocess``, blocking sockets), so kazoo tests,
kazoo's own harness and load generators can all use it::

    with TrizabProcess(tmp_path, extra_config=["snapCount=1000"]) as server:
        client = KazooClient(server.address)

``start()`` picks a free 127.0.0.1 port (unless one was given), writes a zoo.cfg
into the work directory, starts ``python -m trizab serve --config ...`` and
waits, bounded, until the ``ruok`` four-letter word answers ``imok``.  The
generated config enables every four-letter word (``4lw.commands.whitelist=*``)
unless the extra lines set a whitelist themselves, in which case readiness is
judged by any answer at all.  ``stop()`` sends SIGTERM and escalates to SIGKILL;
``kill()`` is SIGKILL at once (a crash); ``pause()``/``resume()`` are SIGSTOP and
SIGCONT (the process keeps its sockets but answers nothing); all act on this
process's pid only, never on a name.  ``restart()`` keeps the port and the data
directory.  A subclass decides what "ready" means by overriding
:meth:`TrizabProcess.readiness` (an ensemble member is ready once it follows or
leads, not merely when it answers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from trizab.runtime.free_ports import free_port, free_ports
from trizab.runtime.launcher import four_letter

__all__ = [
    "ServerStartError",
    "TrizabProcess",
    "four_letter_word",
    "free_port",
    "free_ports",
    "kill_process",
    "terminate_process",
]

START_TIMEOUT_S = float(os.environ.get("TRIZAB_TEST_START_TIMEOUT", "30"))
STOP_TIMEOUT_S = 10.0


class ServerStartError(RuntimeError):
    """The server process exited or did not answer ``ruok`` in time; the message has its log tail."""


def four_letter_word(host: str, port: int, word: str, timeout: float = 5.0) -> str:
    """Send ``word`` on a fresh connection and return the whole answer."""
    return four_letter(port, word, timeout, host=host)


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


class TrizabProcess:
    """One ``trizab serve`` subprocess bound to 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        port: int | None = None,
        extra_config: Sequence[str] = (),
        tick_time: int = 2000,
        storage: str | None = None,
        python: str | None = None,
        log_level: str = "INFO",
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.host = "127.0.0.1"
        self.port = port
        self.extra_config = list(extra_config)
        self.tick_time = tick_time
        self.storage = storage
        self.python = python or sys.executable
        self.log_level = log_level
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: object = None

    # -- paths -----------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def config_path(self) -> Path:
        return self.workdir / "zoo.cfg"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def address(self) -> str:
        """``host:port``, what KazooClient takes."""
        if self.port is None:
            raise RuntimeError("server not started")
        return f"{self.host}:{self.port}"

    @property
    def hosts(self) -> str:
        """The connect string, as kazoo's ``hosts`` (for one server, its ``host:port``)."""
        return self.address

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- lifecycle -------------------------------------------------------

    def write_config(self) -> Path:
        if self.port is None:
            self.port = free_port(self.host)
        lines = [
            f"tickTime={self.tick_time}",
            f"dataDir={self.data_dir}",
            f"clientPort={self.port}",
            f"clientPortAddress={self.host}",
            # As testkit/apache_zk.py: parallel servers must not compete for port 8080.
            "admin.enableServer=false",
        ]
        if not any(line.strip().startswith("4lw.commands.whitelist") for line in self.extra_config):
            lines.append("4lw.commands.whitelist=*")
        if self.storage is not None:
            lines.append(f"storage={self.storage}")
        lines += self.extra_config
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    def start(self, timeout: float = START_TIMEOUT_S, *, wait: bool = True) -> TrizabProcess:
        """Write the config, start the process and (unless ``wait`` is false) wait until ready."""
        if self.running:
            raise RuntimeError("already running")
        self.write_config()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # kept open for the child process
        self._log_file = log
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            [
                self.python,
                "-m",
                "trizab",
                "serve",
                "--config",
                str(self.config_path),
                "--log-level",
                self.log_level,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=env,
        )
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        assert self.proc is not None and self.port is not None
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._close_log()
                raise ServerStartError(
                    f"trizab exited with status {self.proc.returncode} before serving:\n{self.log_tail()}"
                )
            ready, last_error = self.readiness()
            if ready:
                return
            time.sleep(0.02)
        self.kill()
        raise ServerStartError(f"trizab was not ready within {timeout} s ({last_error}):\n{self.log_tail()}")

    def readiness(self) -> tuple[bool, str]:
        """(ready, why not): a standalone server is ready once ``ruok`` answers ``imok``."""
        assert self.port is not None
        try:
            answer = four_letter_word(self.host, self.port, "ruok", timeout=1.0)
        except OSError as exc:
            return False, str(exc)
        if answer == "imok" or "whitelist" in answer:
            return self._replicas_ready()
        return False, f"ruok answered {answer!r}"

    @property
    def read_replicas(self) -> int:
        """The ``readReplicas=N`` of the extra config lines (0 without)."""
        found = 0
        for line in self.extra_config:
            key, _, value = line.partition("=")
            if key.strip() == "readReplicas":
                found = int(value.strip())
        return found

    def _replicas_ready(self) -> tuple[bool, str]:
        """With read replicas, ready once the main process counts every one synced (``mntr``;
        a replica answering instead has no such line, and is asked again)."""
        wanted = self.read_replicas
        if not wanted:
            return True, ""
        assert self.port is not None
        try:
            answer = four_letter_word(self.host, self.port, "mntr", timeout=1.0)
        except OSError as exc:
            return False, str(exc)
        for line in answer.splitlines():
            key, _, value = line.partition("\t")
            if key == "zk_synced_observers" and value.strip() == str(wanted):
                return True, ""
        return False, f"not every read replica synced yet ({wanted} wanted)"

    def replica_pids(self) -> list[int]:
        """The pids of the read replicas the server process runs now (Linux: its children)."""
        pid = self.pid
        if pid is None:
            return []
        found: list[int] = []
        # Per thread: the replicas are forked by a worker thread, not the main one.
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                found += [int(p) for p in children.read_text().split()]
        return sorted(found)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait, then SIGKILL; returns the exit status."""
        proc = self.proc
        if proc is None:
            return None
        status = terminate_process(proc, timeout)
        self._close_log()
        return status

    def kill(self) -> int | None:
        """SIGKILL at once: a crash, no final flush."""
        proc = self.proc
        if proc is None:
            return None
        status = kill_process(proc)
        self._close_log()
        return status

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a long GC pause, a hung VM)."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause` (harmless when not paused)."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)

    def restart(self, *, kill: bool = False, timeout: float = START_TIMEOUT_S) -> TrizabProcess:
        """Stop (or kill) and start again on the same port and data directory."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start(timeout)

    def command(self, word: str, timeout: float = 5.0) -> str:
        assert self.port is not None
        return four_letter_word(self.host, self.port, word, timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _close_log(self) -> None:
        log = self._log_file
        self._log_file = None
        if log is not None:
            log.close()  # type: ignore[attr-defined]

    def __enter__(self) -> TrizabProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
