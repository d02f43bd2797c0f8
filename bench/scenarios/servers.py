"""Start the server a scenario runs against, through the project's launchers.

``serve("apache")`` is a standalone Apache ZooKeeper 3.8 (``testkit.apache_zk.ApacheZooKeeper``),
``serve("apache-3")`` an ensemble (``ApacheEnsemble``), ``serve("trizab-txnlog")`` one
``trizab serve`` (``testkit.process.TrizabProcess``) and ``serve("trizab-3-txnlog")`` an
ensemble (``testkit.trizab_ensemble.TrizabEnsemble``); names as in ``bench.loadgen``.

Both servers get the same settings: no per-host connection limit, sessions may ask for up to
10 minutes (the scenarios' idle sessions send no pings), and, when a scenario asks for it, a
raised ``jute.maxbuffer`` (ZooKeeper reads it from the JVM property ``-Djute.maxbuffer``,
trizab from zoo.cfg). ZooKeeper runs with zkEnv.sh's default heap (``-Xmx1000m``) unless the
scenario needs more, and a listen backlog as deep as trizab's (``net.core.somaxconn``;
ZooKeeper's own default, 50, makes a reconnect storm wait for SYN retransmits).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import attrs

from bench.limits_rss import somaxconn
from bench.loadgen import parse_server
from bench.rawclient import Address
from testkit import apache_zk
from testkit.process import TrizabProcess
from testkit.trizab_ensemble import TrizabEnsemble

SESSION_TIMEOUT_MS = 600_000
ZOOKEEPER_HEAP = "-Xmx1000m"  # zkEnv.sh's default ZK_SERVER_HEAP


@attrs.frozen
class Running:
    """A started server: where clients connect, the pids whose CPU counts, and its members."""

    name: str
    addresses: list[Address]
    pids: list[int]
    ensemble: Any = None  # ApacheEnsemble / TrizabEnsemble (leader(), members with kill()), or None

    def kill_leader(self) -> Any:
        """SIGKILL the ensemble's leader; returns that member."""
        if self.ensemble is None:
            raise ValueError(f"{self.name} is not an ensemble")
        leader = self.ensemble.leader()
        if leader is None:
            raise RuntimeError(f"{self.name}: no member reports Mode: leader")
        leader.kill()
        return leader


def display_name(target: str, size: int | None = None) -> str:
    kind, n, storage = parse_server(target)
    n = size or n
    if kind == "apache":
        return "apache" if n == 1 else f"apache-{n}"
    return f"trizab-{storage}" if n == 1 else f"trizab-{n}-{storage}"


@contextmanager
def serve(
    target: str,
    *,
    size: int | None = None,
    jute_maxbuffer: int | None = None,
    zookeeper_heap: str = ZOOKEEPER_HEAP,
) -> Iterator[Running]:
    """Start ``target`` (``size`` overrides its member count), yield it once every member serves."""
    kind, n, storage = parse_server(target)
    n = size or n
    name = display_name(target, size)
    common = ["maxClientCnxns=0", f"maxSessionTimeout={SESSION_TIMEOUT_MS}"]
    with ExitStack() as stack:
        if kind == "apache":
            zk_lines = [*common, f"clientPortListenBacklog={somaxconn()}"]
            props = [f"-Djute.maxbuffer={jute_maxbuffer}"] if jute_maxbuffer else []
            if n == 1:
                zk = stack.enter_context(
                    apache_zk.ApacheZooKeeper(
                        extra_config=zk_lines,
                        java_properties=props,
                        jvm_args=[zookeeper_heap],
                        start_timeout=60,
                    )
                )
                assert zk.pid is not None
                yield Running(name, [("127.0.0.1", zk.client_port)], [zk.pid])
                return
            ensemble = stack.enter_context(
                apache_zk.ApacheEnsemble(
                    n, extra_config=zk_lines, java_properties=props, jvm_args=[zookeeper_heap]
                )
            )
            yield _ensemble_running(name, ensemble)
            return
        lines = [*common, *([f"jute.maxbuffer={jute_maxbuffer}"] if jute_maxbuffer else [])]
        if n == 1:
            workdir = Path(tempfile.mkdtemp(prefix="trizab-scenario-"))
            stack.callback(shutil.rmtree, workdir, True)
            server = stack.enter_context(
                TrizabProcess(workdir, storage=storage, extra_config=lines, log_level="WARNING")
            )
            assert server.port is not None and server.pid is not None
            yield Running(name, [("127.0.0.1", server.port)], [server.pid])
            return
        ensemble = stack.enter_context(
            TrizabEnsemble(n, storage=storage, extra_config=lines, log_level="WARNING")
        )
        yield _ensemble_running(name, ensemble)


def _ensemble_running(name: str, ensemble: Any) -> Running:
    members: Sequence[Any] = list(ensemble)
    return Running(
        name,
        [("127.0.0.1", m.client_port) for m in members],
        [m.pid for m in members if m.pid is not None],
        ensemble,
    )
