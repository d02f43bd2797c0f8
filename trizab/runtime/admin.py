"""What a server tells operators: the four-letter words' data, gathered in one place.

:class:`Admin` answers a four-letter word from the core task (so the core's
state it reads is consistent) with :mod:`trizab.frontend.fourletter`'s
formatting.  The server's role comes from a :class:`Status` provider: the
standalone server's is fixed, a member's follows its ZAB peer.  A new
operator-facing listener (an AdminServer, a metrics endpoint) should read the
same :meth:`Admin.snapshot`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from trizab import config as cfg
from trizab.frontend import fourletter
from trizab.runtime.clock import Clock
from trizab.runtime.connections import Connection, Connections
from trizab.runtime.disk import Disk
from trizab.server.distribution import Distribution

__all__ = ["Admin", "Status", "trizab_version"]

log = logging.getLogger("trizab.admin")

NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"


def trizab_version() -> str:
    try:
        from importlib.metadata import version

        return version("trizab")
    except Exception:  # running from a checkout that is not installed
        return "0.0.0"


@attrs.frozen
class Status:
    """The server's role as the four-letter words show it."""

    mode: str  # standalone | leader | follower | observer | looking | read-only
    serving: bool = True  # False: electing or syncing (ZooKeeper has no ZooKeeperServer then)
    read_only: bool = False
    # A member's mntr keys (without zk_) and conf lines after ZooKeeper's standalone ones.
    ensemble_metrics: tuple[tuple[str, int], ...] = ()
    ensemble_conf: tuple[tuple[str, str | None], ...] = ()  # None: the key alone on its line


STANDALONE = Status("standalone")


class Admin:
    """Four-letter words (see the module docstring)."""

    def __init__(
        self,
        config: cfg.ServerConfig,
        clock: Clock,
        connections: Connections,
        stats: fourletter.ServerStats,
        disk: Disk,
    ) -> None:
        self.disk = disk
        self.config = config
        self.clock = clock
        self.connections = connections
        self.stats = stats
        self.started_ms = 0
        self.core: Any = None  # set by the core task's owner once recovery built the core
        self.status: Callable[[], Status] = lambda: STANDALONE
        # ZooKeeper's summaries this server keeps (latencies, fsync, snapshot, election times),
        # read from their owners; mntr prints them and the metrics endpoint exports them.
        self.summaries: Callable[[], Sequence[Distribution]] = lambda: ()

    def answer(self, c: Connection, word: str, argument: int | None) -> None:
        status = self.status()
        whitelist = self.config.effective_4lw_whitelist
        if not status.serving and word not in ("ruok", "envi") and word in whitelist:
            # As ZooKeeper while it has no running ZooKeeperServer (electing, or syncing).
            text = "null" if word == "isro" else NOT_SERVING
        else:
            c.received, c.interest_ops = 1, 0
            try:
                text = fourletter.run(word, whitelist, lambda: self.snapshot(status), argument)
            except Exception:
                # A bug in one report must not take the server down: say so, to the asker too.
                log.exception("internal error answering the four-letter word %r", word)
                text = f"internal error answering {word}\n"
        self.connections.answer_and_close(c, text)

    def snapshot(self, status: Status | None = None) -> fourletter.Snapshot:
        status = status or self.status()
        core = self.core
        config = self.config
        data_size = _dir_size(config.data_dir)
        log_size = _dir_size(config.data_log_dir) if config.data_log_dir else data_size
        return fourletter.Snapshot(
            version=fourletter.version_string(trizab_version()),
            mode=status.mode,
            read_only=status.read_only,
            zxid=core.last_zxid,
            node_count=core.node_count,
            approximate_data_size=core.approximate_data_size,
            outstanding_requests=core.outstanding_requests,
            stats=self.stats,
            connections=self.connections.describe(),
            sessions=_sessions(core),
            ephemerals_by_session=core.ephemerals_by_session(),
            watches_by_session=core.watches_by_session(),
            watches_by_path=core.watches_by_path(),
            conf=_conf_lines(config, data_size, log_size) + list(status.ensemble_conf),
            environment=_environment(),
            data_dir_size=data_size,
            log_dir_size=log_size,
            uptime_ms=self.clock.now_ms() - self.started_ms,
            open_file_descriptors=_open_fds(),
            max_file_descriptors=_max_fds(),
            disk_full=self.disk.full,
            ensemble_metrics=status.ensemble_metrics,
            summaries=[row for d in self.summaries() for row in d.mntr_rows(self.clock.monotonic())],
            reset_connection_stats=self.connections.reset_statistics,
        )


def _sessions(core: Any) -> dict[int, tuple[int, int | None]]:
    """session id -> (timeout ms, expiry ms or None)."""
    live = core.tracker.sessions
    out: dict[int, tuple[int, int | None]] = {}
    for sid, timeout, _conn in core.sessions():
        session = live.get(sid)
        out[sid] = (timeout, getattr(session, "expire_at", None) or None)
    return out


def _dir_size(path: Path | None) -> int:
    if path is None:
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return total


def _conf_lines(config: cfg.ServerConfig, data_size: int, log_size: int) -> list[tuple[str, str | None]]:
    data_dir = str(config.data_dir) if config.data_dir else ""
    lines = [
        ("clientPort", str(config.client_port if config.client_port is not None else -1)),
        ("secureClientPort", str(config.secure_client_port if config.secure_client_port is not None else -1)),
        ("dataDir", data_dir),
        ("dataDirSize", str(data_size)),
        ("dataLogDir", str(config.data_log_dir) if config.data_log_dir else data_dir),
        ("dataLogSize", str(log_size)),
        ("tickTime", str(config.tick_time)),
        ("maxClientCnxns", str(config.max_client_cnxns)),
        ("minSessionTimeout", str(config.min_session_timeout)),
        ("maxSessionTimeout", str(config.max_session_timeout)),
        ("clientPortListenBacklog", "-1"),
        ("serverId", str(config.server_id)),
    ]
    if config.servers:
        lines += [("initLimit", str(config.init_limit)), ("syncLimit", str(config.sync_limit))]
    return lines


def _environment() -> list[tuple[str, str]]:
    return [
        ("host.name", socket.gethostname()),
        ("trizab.version", trizab_version()),
        ("python.version", platform.python_version()),
        ("python.implementation", platform.python_implementation()),
        ("python.executable", sys.executable),
        ("trio.version", trio.__version__),
        ("os.name", platform.system()),
        ("os.arch", platform.machine()),
        ("os.version", platform.release()),
        ("user.name", _user()),
        ("user.home", os.path.expanduser("~")),
        ("user.dir", os.getcwd()),
        ("process.id", str(os.getpid())),
    ]


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return "?"


def _open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _max_fds() -> int | None:
    try:
        import resource

        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return None
