"""``readReplicas=N``: a standalone server's reads served by N sibling processes on its port.

Theory of operation
-------------------
One trizab process runs its requests on one core.  With ``readReplicas=N``,
``trizab serve`` of a standalone server starts N more processes that are
*observers* of it, exactly as observers are across hosts, only over loopback:

* The main process becomes the leader of a one-voter ensemble
  (:func:`plan_replicas`): ``server.S=127.0.0.1:q:e`` for itself and an
  ``:observer`` line for each replica, on loopback ports free at start-up and
  below the ephemeral range (:func:`trizab.runtime.free_ports.free_ports`).  Its storage and
  its fsync are unchanged, and it alone decides what is committed.
* Each replica (:func:`replica_config`) keeps its tree in memory
  (``storage=memory``, no dataDir, no AdminServer, no metrics endpoint) and
  syncs from the main process at every start (DIFF or SNAP), then follows its
  commit stream.  Writes, session creation and session moves are forwarded to
  the main process (REQUEST), as an observer does, so sessions are global and a
  client sees what an observer would guarantee: its own writes in order, every
  write committed everywhere in one order, ``sync`` to catch up.
* Every process listens on the same client port with ``SO_REUSEPORT``
  (:func:`open_shared_listeners`): the kernel spreads new connections over
  them.  A replica starts listening only once it is synced and serving, so a
  connection never lands on a replica that would turn it away.
* The main process keeps its replicas running (:class:`ReplicaSupervisor`): one
  that exits is started again after :data:`RESTART_DELAY_S`, with one log line.
  A replica stops when the main process exits, however it exits: it watches the
  read end of a pipe whose write end only the main process holds: end of file
  once that process is gone, even killed.  (Not ``PR_SET_PDEATHSIG``: it fires
  when the *thread* that forked the child ends, and trio forks from a worker
  thread that ends when idle.)

The key is refused (:func:`refusal`) where this cannot work: on a member of a
configured ensemble (its observers are configured with ``server.N`` lines) and
off Linux (the shared port needs Linux's ``SO_REUSEPORT`` balancing).  To its
clients the server stays a standalone server where it can: ``srvr``, ``stat``
and ``mntr`` say ``standalone`` in every process, ``/zookeeper/config`` stays
empty and ``reconfig`` is answered ``ZUNIMPLEMENTED`` (``ZRECONFIGDISABLED``
unless ``reconfigEnabled=true``), as a standalone ZooKeeper's.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from trizab import config as cfg
from trizab.runtime.free_ports import free_ports

__all__ = [
    "RESTART_DELAY_S",
    "ReplicaPlan",
    "ReplicaSpec",
    "ReplicaSupervisor",
    "open_shared_listeners",
    "plan_replicas",
    "refusal",
    "replica_config",
    "watch_parent",
]

log = logging.getLogger("trizab.server")

RESTART_DELAY_S = 1.0
STOP_GRACE_S = 10.0
LOOPBACK = "127.0.0.1"


def refusal(config: cfg.ServerConfig, platform: str = sys.platform) -> str | None:
    """Why ``readReplicas`` cannot be served with this configuration, or None when it can."""
    if config.read_replicas == 0:
        return None
    if not platform.startswith("linux"):
        return (
            f"readReplicas={config.read_replicas} needs Linux (the processes share the client port "
            "with SO_REUSEPORT); remove the key"
        )
    if config.servers:
        return (
            f"readReplicas={config.read_replicas} is for a standalone server; an ensemble member cannot "
            "have read replicas yet (add observers with server.N=...:observer lines instead)"
        )
    return None


@attrs.frozen
class ReplicaPlan:
    """The loopback ensemble a standalone server with read replicas runs as."""

    leader_id: int
    servers: dict[int, cfg.QuorumServer]

    @property
    def replica_ids(self) -> tuple[int, ...]:
        return tuple(sid for sid in sorted(self.servers) if sid != self.leader_id)


def plan_replicas(config: cfg.ServerConfig, ports: Sequence[int] | None = None) -> ReplicaPlan:
    """The main server's id (its myid, else 1), its replicas' ids, and loopback quorum ports."""
    count = config.read_replicas
    leader_id = config.server_id or 1
    others = [sid for sid in range(1, count + 2) if sid != leader_id][:count]
    ids = [leader_id, *others]
    ports = list(ports) if ports is not None else free_ports(2 * len(ids), LOOPBACK)
    servers = {
        sid: cfg.QuorumServer(
            sid,
            LOOPBACK,
            ports[2 * k],
            ports[2 * k + 1],
            role="participant" if sid == leader_id else "observer",
        )
        for k, sid in enumerate(ids)
    }
    return ReplicaPlan(leader_id, servers)


def leader_config(config: cfg.ServerConfig, plan: ReplicaPlan) -> cfg.ServerConfig:
    """The main process's configuration: the only voter of the loopback ensemble."""
    return config.evolve(servers=dict(plan.servers), server_id=plan.leader_id, standalone_enabled=False)


@attrs.frozen
class ReplicaSpec:
    """What a replica process is told on its command line (``--replica-of``, JSON)."""

    sid: int
    leader_id: int
    servers: tuple[tuple[int, int, int], ...]  # (sid, quorum port, election port)
    client_port: int | None
    secure_client_port: int | None
    parent_fd: int  # the read end of the pipe that tells the main process's exit

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self, recurse=False), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> ReplicaSpec:
        try:
            fields = json.loads(raw)
            fields["servers"] = tuple(tuple(map(int, s)) for s in fields["servers"])
            return cls(**fields)
        except (ValueError, TypeError, KeyError) as exc:
            raise cfg.ConfigError(f"bad --replica-of value: {exc}") from None

    def plan(self) -> ReplicaPlan:
        return ReplicaPlan(
            self.leader_id,
            {
                sid: cfg.QuorumServer(
                    sid, LOOPBACK, q, e, role="participant" if sid == self.leader_id else "observer"
                )
                for sid, q, e in self.servers
            },
        )


def replica_config(config: cfg.ServerConfig, spec: ReplicaSpec) -> cfg.ServerConfig:
    """A replica's configuration: the main one's, as an in-memory observer on the same ports."""
    return config.evolve(
        servers=dict(spec.plan().servers),
        server_id=spec.sid,
        standalone_enabled=False,
        is_read_replica=True,
        client_port=spec.client_port,
        secure_client_port=spec.secure_client_port,
        # In memory: the replica syncs from the main process at every start.
        storage_name="memory",
        storage_options={},
        data_dir=None,
        data_log_dir=None,
        dynamic_config_file=None,
        autopurge_purge_interval=0,
        # The main process owns these ports.
        admin_enable_server=False,
        metrics_provider=None,
    )


async def open_shared_listeners(port: int, host: str) -> list[trio.SocketListener]:
    """TCP listeners with ``SO_REUSEPORT``: every process of the server binds the same port.

    ``trio.open_tcp_listeners`` has no such option, so the sockets are made here the way it
    makes them (every address ``host`` resolves to; IPv6 sockets only for IPv6).
    """
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners: list[trio.SocketListener] = []
    seen: set[Any] = set()
    try:
        for family, type_, proto, _name, sockaddr in infos:
            if sockaddr in seen:
                continue
            seen.add(sockaddr)
            sock = trio.socket.socket(family, type_, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                await sock.bind(sockaddr)
                sock.listen(socket.SOMAXCONN)
            except BaseException:
                sock.close()
                raise
            listeners.append(trio.SocketListener(sock))
            # Port 0: the others bind the port the first one got.
            port = sock.getsockname()[1]
            sockaddr = (sockaddr[0], port, *sockaddr[2:])
    except BaseException:
        for ln in listeners:
            await trio.aclose_forcefully(ln)
        raise
    return listeners


class ReplicaSupervisor:
    """Starts the replica processes, restarts one that exits, and stops them all when cancelled."""

    def __init__(self, plan: ReplicaPlan, base_argv: Sequence[str], log_file: Path | None = None) -> None:
        self.plan = plan
        # ``python -m trizab serve`` with the main process's own options (its config file, log
        # settings); each replica adds --replica-of (and its own --log-file).
        self.base_argv = list(base_argv)
        self.log_file = log_file
        self.pids: dict[int, int] = {}  # sid -> the running replica's pid
        self.starts: dict[int, int] = {}  # sid -> how many times it was started

    def argv(self, spec: ReplicaSpec) -> list[str]:
        argv = [*self.base_argv, "--replica-of", spec.to_json()]
        if self.log_file is not None:
            name = f"{self.log_file.stem}.replica{spec.sid}{self.log_file.suffix}"
            argv += ["--log-file", str(self.log_file.with_name(name))]
        return argv

    async def run(
        self,
        client_port: int | None,
        secure_client_port: int | None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with trio.open_nursery() as nursery:
            for sid in self.plan.replica_ids:
                nursery.start_soon(self._keep_running, sid, client_port, secure_client_port)
            task_status.started()

    async def _keep_running(self, sid: int, client_port: int | None, secure_port: int | None) -> None:
        while True:
            status = await self._run_once(sid, client_port, secure_port)
            log.warning("read replica %d exited with status %s; restarting it", sid, status)
            await trio.sleep(RESTART_DELAY_S)

    async def _run_once(self, sid: int, client_port: int | None, secure_port: int | None) -> int:
        # The replica sees end of file on `read_end` once every copy of `write_end` is closed,
        # which happens when this process exits, however it exits.
        read_end, write_end = os.pipe()
        servers = tuple((s.sid, s.quorum_port, s.election_port) for s in self.plan.servers.values())
        spec = ReplicaSpec(sid, self.plan.leader_id, servers, client_port, secure_port, read_end)
        try:
            proc = await trio.lowlevel.open_process(
                self.argv(spec), pass_fds=(read_end,), stdin=subprocess.DEVNULL
            )
        finally:
            os.close(read_end)
        self.pids[sid] = proc.pid
        self.starts[sid] = self.starts.get(sid, 0) + 1
        log.info("read replica %d started (pid %d)", sid, proc.pid)
        try:
            return await proc.wait()
        finally:
            os.close(write_end)
            self.pids.pop(sid, None)
            if proc.returncode is None:
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + STOP_GRACE_S
                    proc.terminate()
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()


async def watch_parent(fd: int, stop: Any) -> None:
    """Call ``stop()`` once the main process has exited (end of file on its pipe)."""
    await trio.lowlevel.wait_readable(fd)
    log.info("the main server exited; this read replica stops")
    stop()
