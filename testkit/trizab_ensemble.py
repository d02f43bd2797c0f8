"""A local trizab ensemble of real ``trizab serve`` processes, for tests, compat and benchmarks.

Theory of operation
-------------------
The same shape as :class:`testkit.apache_zk.ApacheEnsemble` so that a
benchmark or a test runs one script against either: indexable members with
``address``, ``client_port``, ``pid``, ``running``, ``start()``, ``stop()``
(SIGTERM then SIGKILL), ``kill()`` (SIGKILL: a crash) and ``wait_ready()``;
the ensemble has ``address`` (the connect string), ``start()``, ``stop()``,
``leader()`` and is a context manager.  Configs come from
:func:`trizab.runtime.launcher.write_configs` (free loopback ports, one dataDir
per member, ``myid`` files).  A member is ready when ``srvr`` reports a Mode
(it only answers once it is part of an established epoch).  Processes are
stopped by pid only.

For fault injection (:mod:`compat.chaos`) a member also has ``quorum_port`` and
``election_port`` (read back from its config), an optional process group id
``gid`` (so a firewall can tell its packets apart), ``pause()``/``resume()``
(SIGSTOP/SIGCONT) and ``wipe_data()``: while stopped, everything in its data
directories goes except ``myid``, which is how trizab knows its server id.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from testkit.ensemble_base import ProcessEnsemble, clear_directory
from testkit.procs import ChildProcess
from trizab.config import ServerConfig, load
from trizab.runtime.launcher import four_letter, member_mode, write_configs

__all__ = ["TrizabEnsemble", "TrizabMember"]


class TrizabMember(ChildProcess):
    def __init__(
        self,
        sid: int,
        config: Path,
        client_port: int,
        env: dict[str, str] | None = None,
        log_level: str = "INFO",
        gid: int | None = None,
    ) -> None:
        self.log_level = log_level
        self.sid = sid
        self.config = config
        self.client_port = client_port
        self.workdir = config.parent
        self.log_path = self.workdir / "member.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.env = env
        # The process's group id (None: inherit ours); read at start(), so it may be set later.
        self.gid = gid
        self._parsed: ServerConfig | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def _server_config(self) -> ServerConfig:
        if self._parsed is None:
            self._parsed = load(self.config)
        return self._parsed

    @property
    def quorum_port(self) -> int:
        """The port followers connect to when this member leads (its ``server.N`` line)."""
        return self._server_config().servers[self.sid].quorum_port

    @property
    def election_port(self) -> int:
        """The leader-election port (its ``server.N`` line)."""
        return self._server_config().servers[self.sid].election_port

    @property
    def data_dir(self) -> Path:
        data_dir = self._server_config().data_dir
        if data_dir is None:
            raise RuntimeError(f"member {self.sid}: its config has no dataDir")
        return data_dir

    def wipe_data(self) -> None:
        """Empty the data directories (a lost disk), keeping ``myid``; only while stopped."""
        if self.running:
            raise RuntimeError(f"member {self.sid} is running: stop or kill it before wiping its data")
        config = self._server_config()
        clear_directory(self.data_dir, keep=("myid",))
        if config.data_log_dir is not None:
            clear_directory(config.data_log_dir, keep=("myid",))

    def start(self) -> None:
        if self.running:
            return
        env = dict(os.environ)
        env.update(self.env or {})
        with self.log_path.open("ab") as logf:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "trizab",
                    "serve",
                    "--config",
                    str(self.config),
                    "--log-level",
                    self.log_level,
                ],
                stdout=logf,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                group=self.gid,
            )

    def mode(self) -> str | None:
        return member_mode(self.client_port) if self.running else None

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.mode() not in ("leader", "follower", "observer"):
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"member {self.sid} exited:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"member {self.sid} not serving within {timeout} s:\n{self.tail()}")
            time.sleep(0.05)

    def four_letter_word(self, word: str, timeout: float = 2.0) -> str:
        return four_letter(self.client_port, word, timeout)

    def tail(self, n: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "".join(self.log_path.read_text(errors="replace").splitlines(keepends=True)[-n:])

    def get_logs(self, num_lines: int = 100) -> list[str]:
        if not self.log_path.exists():
            return []
        return self.log_path.read_text(errors="replace").splitlines(keepends=True)[-num_lines:]


class TrizabEnsemble(ProcessEnsemble[TrizabMember]):
    """``size`` voting members (+ ``observers``) as processes on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        size: int = 3,
        *,
        observers: int = 0,
        tick_time: int = 2000,
        init_limit: int = 10,
        sync_limit: int = 5,
        storage: str | None = None,
        extra_config: Sequence[str] = (),
        workdir: str | os.PathLike[str] | None = None,
        start_timeout: float = 60.0,
        env: dict[str, str] | None = None,
        log_level: str = "INFO",
        gids: Mapping[int, int] | None = None,
    ) -> None:
        """``gids`` maps a server id to the group id its process runs with (default: ours)."""
        super().__init__(workdir, prefix="trizab-ens-", start_timeout=start_timeout)
        configs = write_configs(
            self.workdir,
            size,
            observers=observers,
            tick_time=tick_time,
            init_limit=init_limit,
            sync_limit=sync_limit,
            storage=storage,
            extra=extra_config,
        )
        gids = gids or {}
        self.members = [
            TrizabMember(sid, path, port, env, log_level, gid=gids.get(sid)) for sid, path, port in configs
        ]

    def leader(self) -> TrizabMember | None:
        for m in self.members:
            with contextlib.suppress(OSError):
                if m.mode() == "leader":
                    return m
        return None
