"""One trizab server, standalone or an ensemble member: the runtime's parts, wired on one screen.

Theory of operation
-------------------
The runtime is a handful of parts, each owning its state, assembled by
:class:`Server` (ZooKeeper's ``setupRequestProcessors``, for trizab)::

    ClientPort ──feed/handed_on──> CoreTask ──to_log──> commit path ──committed──> CoreTask
    (listener, socket reader,      (owns the core;       LocalCommit: group commit + background sync
     writers; Gate)                 inbox of events)     ZabCommit:   the ZAB peer, quorum + election
          ^                              │                            transports, ZabStorage
          └──── Connections <──outputs───┘
                (reply buffers, flush)   Snapshotter (fuzzy snapshots, purge)   Admin (4lw data)
                                         AdminServer (HTTP; asks the core task via AdminQuery)
                                         Disk (the engine, its directory lock, where to block)

A **setData**, socket to reply: the socket reader (:mod:`trizab.runtime.clients`)
reads the frame and parses it (``ClientConnection``) and calls
:meth:`CoreTask.feed`; the core preps it into a transaction
(:mod:`trizab.server.core`), and :meth:`CoreTask.handle_ready` hands ``to_log``
to the commit path.  Standalone, :class:`~trizab.runtime.local_commit.LocalCommit`
appends it with everything else logged meanwhile and syncs once (group commit);
in an ensemble, :class:`~trizab.runtime.zab_commit.ZabCommit` proposes it, and it
is committed once a quorum acknowledged it.  Either way, once durable and
committed it comes back to :meth:`CoreTask.committed`, which applies it; the
reply goes to :class:`~trizab.runtime.connections.Connections`, encoded into the
connection's buffer, and :meth:`Connections.flush` writes it at the end of the
batch.  Each piece of state has one owner along the way: the parser (socket
reader), the core (core task), the log (commit path), the reply buffer
(connections).

Where to add things:

* a new **listener** (an AdminServer, a metrics endpoint): a task started in
  :meth:`Server.run`'s nursery, reading :meth:`Admin.snapshot` from the core task;
* a new **commit path**: a class with :class:`~trizab.runtime.core_task.CommitPath`'s
  three methods and a ``run`` task, chosen in :meth:`Server.__init__`;
* a new **periodic task**: a task in :meth:`Server.run`'s nursery that posts a
  typed event (:mod:`trizab.runtime.events`) to the core task, with its handler
  registered by :meth:`CoreTask.on`.

Shutdown: cancelling :meth:`Server.run` stops listening, drops every connection
and cancels every task; the final storage flush and close run shielded, under a
deadline.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from trizab import config as cfg
from trizab.frontend.fourletter import ServerStats
from trizab.logflood import FLOODS
from trizab.runtime.admin import Admin, trizab_version
from trizab.runtime.admin_server import AdminQuery, AdminServer, answer_query, initial_configuration
from trizab.runtime.clients import ClientPort, Gate
from trizab.runtime.clock import Clock
from trizab.runtime.connections import Connections
from trizab.runtime.core_task import CoreTask
from trizab.runtime.disk import Disk, StartupError, open_storage, storage_name
from trizab.runtime.events import ConnectionsLost, Tick
from trizab.runtime.key_files import warn_loose_key_files
from trizab.runtime.local_commit import LocalCommit
from trizab.runtime.sasl import load_sasl
from trizab.runtime.sasl import nonce as sasl_nonce
from trizab.runtime.snapshots import Snapshotter
from trizab.runtime.tls import ServerTls, TlsError
from trizab.server.distribution import Distribution
from trizab.storage import Recovered, Storage
from trizab.tree.snapshot import gc_paused

if TYPE_CHECKING:
    # Imported when a server is an ensemble member: ZAB, election and the quorum transport are
    # a tenth of a standalone server's start-up imports (-X importtime), and it needs none of them.
    from trizab.runtime.zab_commit import ZabCommit

__all__ = ["Clock", "Server", "StartupError", "is_ensemble", "serve", "trizab_version"]

log = logging.getLogger("trizab.server")

SHUTDOWN_GRACE_S = 10.0


def is_ensemble(config: cfg.ServerConfig) -> bool:
    """Whether ``config`` describes a replicated member (ZooKeeper: more than one server line)."""
    return len(config.servers) > 1 or (bool(config.servers) and not config.standalone_enabled)


def core_config(
    config: cfg.ServerConfig, sasl_users: dict[str, str] | None = None, sasl_kerberos: Any = None
) -> Any:
    """The server core's configuration, from the zoo.cfg values it uses (and the JAAS logins)."""
    from trizab.server.core import CoreConfig

    return CoreConfig(
        sasl_users=sasl_users,
        sasl_kerberos=sasl_kerberos,
        sasl_nonce=sasl_nonce,
        sasl_enabled=config.sasl.auth_provider,
        sasl_super_users=frozenset(config.sasl.super_users),
        enforce_auth_schemes=frozenset(config.sasl.enforced_schemes),
        server_id=config.server_id,
        tick_time_ms=config.tick_time,
        min_session_timeout_ms=config.min_session_timeout,
        max_session_timeout_ms=config.max_session_timeout,
        super_digest=config.super_digest,
        x509_enabled=config.x509_enabled,
        extended_types_enabled=config.extended_types_enabled,
        jute_max_buffer=config.jute_max_buffer,
        read_only=False,
        reconfig_enabled=config.reconfig_enabled,
        hide_membership=config.read_replicas > 0,
        container_check_interval_ms=config.container_check_interval_ms,
        reap_containers_immediately=config.reap_containers_immediately,
    )


def _default_core(
    config: cfg.ServerConfig, now_ms: int, sasl_users: dict[str, str] | None = None, sasl_kerberos: Any = None
) -> Any:
    from trizab.server.core import ServerCore

    cls = ServerCore
    if is_ensemble(config):
        from trizab.server.replica import ReplicaCore

        cls = ReplicaCore
    return cls(core_config(config, sasl_users, sasl_kerberos), now_ms=now_ms)


def _client_tls(config: cfg.ServerConfig) -> ServerTls | None:
    """The client port's TLS context, if a listener speaks TLS (StartupError if it cannot load)."""
    if not config.client_tls_enabled:
        return None
    try:
        return ServerTls(config.client_tls, super_user=config.x509_super_user)
    except TlsError as exc:
        raise StartupError(f"client TLS: {exc}") from None


class Server:
    """One server; :meth:`run` is its whole lifetime (see the module docstring)."""

    def __init__(
        self,
        config: cfg.ServerConfig,
        *,
        storage: Storage | None = None,
        clock: Clock | None = None,
        # (config, now_ms) -> core; default: ServerCore, or ReplicaCore for a member.
        core_factory: Callable[[cfg.ServerConfig, int], Any] | None = None,
        rng: random.Random | None = None,
        # Called with the tree's node count once recovery has loaded it and after each
        # snapshot; the CLI passes trizab.runtime.tuning.freeze_big_tree.
        on_tree_settled: Callable[[int], None] | None = None,
        # (what, done, total, unit) while a big snapshot and log load at start-up; the CLI
        # shows it (trizab.progress).  Called from the storage's thread too.
        progress: Callable[[str, int, int, str], None] | None = None,
        tick_ms: int | None = None,  # a member's ZAB tick (default: zab_commit.TICK_MS)
    ) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.replicated = is_ensemble(config)
        if self.replicated and config.server_id not in config.servers:
            where = config.data_dir / "myid" if config.data_dir else "dataDir/myid"
            raise StartupError(
                f"this server's id ({where}) must name one of the server.N lines: "
                + ", ".join(map(str, sorted(config.servers)))
            )
        # The JAAS file is read now: a missing or broken one stops start-up before anything opens.
        self.sasl = load_sasl(config)
        self.disk = Disk(storage if storage is not None else open_storage(config), config, self.clock)
        # The engine's plugin name for the logs (an engine passed in: its class).
        self.engine_name = storage_name(config) if storage is None else type(storage).__name__
        self._core_factory = core_factory or functools.partial(
            _default_core, sasl_users=self.sasl.client_users, sasl_kerberos=self.sasl.client_kerberos
        )
        self._on_tree_settled = on_tree_settled
        self._progress = progress
        self.core_task: CoreTask | None = None
        stats = ServerStats()
        self.connections = Connections(
            stats, self.clock.now_ms, self._wake_core, max_outbound_bytes=config.connection_max_outbound_bytes
        )
        self.admin = Admin(config, self.clock, self.connections, stats, self.disk)
        self.gate = Gate()
        self.clients = ClientPort(config, self.connections, self.gate, _client_tls(config))
        self.snapshots = Snapshotter(config, self.disk, rng or random.Random(), on_saved=self._tree_settled)
        self.local: LocalCommit | None = None
        self.metrics_port: int | None = None  # /metrics's port once served (metricsProvider.*)
        self.zab: ZabCommit | None = None
        if self.replicated:
            from trizab.runtime.zab_commit import TICK_MS, ZabCommit

            self.zab = ZabCommit(config, self.clock, self.disk, TICK_MS if tick_ms is None else tick_ms)
        self.admin_server = AdminServer(
            config,
            self.admin,
            self.snapshots,
            member=self._member_view,
            initial_configuration=None if self.zab is not None else initial_configuration(config),
        )

    def _member_view(self) -> Any:
        """The AdminServer's view of this ensemble member (None when standalone)."""
        if self.zab is None:
            return None
        from trizab.runtime.zab_status import member_view

        return member_view(self.zab, self._client_address())

    @property
    def storage(self) -> Storage:
        return self.disk.storage

    @property
    def core(self) -> Any:
        return self.core_task.core if self.core_task is not None else None

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return self.clients.addresses

    def _client_address(self) -> str:
        host, port = self.addresses[0] if self.addresses else (self.config.client_port_address, 0)
        return f"{host}:{port}"

    def _wake_core(self) -> None:
        if self.core_task is not None:
            self.core_task.wake(ConnectionsLost())

    def _tree_settled(self) -> None:
        if self._on_tree_settled is not None and self.core is not None:
            self._on_tree_settled(self.core.node_count)

    async def run(
        self,
        *,
        task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
        listeners: list[trio.abc.Listener[Any]] | None = None,
    ) -> None:
        """Serve until cancelled; ``listeners`` replaces the TCP client port (tests)."""
        config = self.config
        # Bind first: a taken port is the commonest start-up failure, and should stop us
        # before the storage is even opened.
        # A read replica listens only once synced: the kernel gives it connections at once.
        late_bind = listeners is None and config.is_read_replica and self.zab is not None
        listeners = listeners if listeners is not None else [] if late_bind else await self.clients.bind()
        # No cyclic collection from reading the storage until the recovered tree has settled
        # (``on_tree_settled`` freezes a big one): it would only walk what recovery builds to
        # keep, the log's records then every znode (re-enabled after loading, its first pass
        # cost 0.34 s of a 1,000,000-znode restart, bench/restart.py, right before the freeze).
        collector_paused = contextlib.ExitStack()
        collector_paused.enter_context(gc_paused())
        try:
            recovered = await self.disk.open(self._progress)
        except BaseException:
            collector_paused.close()
            for ln in listeners:
                await trio.aclose_forcefully(ln)
            raise
        commit_path: Any = None
        try:
            with collector_paused:
                core_task = self._recover(recovered)
            if self.zab is not None:
                from trizab.runtime.zab_status import member_status

                port = self.addresses[0][1] if self.addresses else (config.client_port or 0)
                self.zab.start(core_task, recovered, port, self.snapshots)
                commit_path = self.zab
                zab = self.zab
                self.admin.status = lambda: member_status(zab)
            else:
                commit_path = self.local = LocalCommit(self.disk, self.clock, self.gate)
                self.local.core_task = core_task
            core_task.commit = commit_path
            core_task.on(AdminQuery, answer_query)
            if recovered.snapshot is None and self.disk.durable:
                await self._initial_snapshot(core_task, recovered)
            # The snapshot's bytes and the replayed log are in the tree now: holding them for
            # the server's lifetime cost 1,000,000 znodes' server 130 MB more RSS.
            del recovered
            core_task.handle_ready()
            self.admin.summaries = self._summaries
            async with trio.open_nursery() as nursery:
                nursery.start_soon(core_task.run)
                await nursery.start(commit_path.run)
                nursery.start_soon(self.snapshots.run)
                nursery.start_soon(_sum_up_log_floods)
                if self.zab is None:
                    nursery.start_soon(self._ticker, core_task)
                if config.metrics_provider is not None:
                    self.metrics_port = await nursery.start(self._serve_metrics)
                if late_bind and self.zab is not None:
                    await self.zab.serving.wait()
                    listeners.extend(await self.clients.bind())
                await nursery.start(self.clients.serve, listeners)
                self.admin_server.port = await nursery.start(self.admin_server.serve, core_task.post)
                self._log_started()
                task_status.started(self.addresses)
        finally:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + SHUTDOWN_GRACE_S
                for ln in listeners:
                    with contextlib.suppress(Exception):
                        await trio.aclose_forcefully(ln)
                if self.local is not None:
                    await self.local.close()
                else:
                    await self.disk.close()

    def _summaries(self) -> list[Distribution]:
        """ZooKeeper's summaries, from the parts that measure them (mntr and /metrics show them)."""
        found = [self.connections.read_latency, self.connections.update_latency, self.disk.fsync_time]
        found.append(self.snapshots.snapshot_time)
        return found + ([self.zab.elections.election_time] if self.zab is not None else [])

    async def _serve_metrics(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """The Prometheus endpoint (imported only when configured: prometheus_client costs start-up)."""
        from trizab.runtime.metrics import ServerCollector, metrics_registry, serve_metrics

        own = [self.disk.batch_size]
        collector = ServerCollector(self.admin, self.disk, self.engine_name, own_summaries=lambda: own)
        await serve_metrics(self.config, metrics_registry(self.config, collector), task_status=task_status)

    async def _initial_snapshot(self, core_task: CoreTask, recovered: Recovered) -> None:
        """A data directory without a snapshot gets one, as ZooKeeper's does at start-up.

        Apache ZooKeeper refuses a log without a snapshot ("No snapshot found, but there are
        log entries"), so this is what lets it open a directory trizab wrote (rolling back).
        A member's tree holds only the snapshot's state until its leader confirms the log.
        """
        zxid = recovered.last_zxid if not self.replicated else recovered.snapshot_zxid
        started = self.clock.monotonic()
        data = core_task.core.snapshot()
        await self.disk.blocking(self.storage.save_snapshot, zxid, data)
        self.snapshots.last_saved = (zxid, len(data), trio.current_time())
        # ZooKeeper times its start-up snapshot too (snapshottime's first count).
        self.snapshots.snapshot_time.record(round((self.clock.monotonic() - started) * 1000))
        log.info("initial snapshot at 0x%x written", zxid)

    def _recover(self, recovered: Recovered) -> CoreTask:
        """Build the core from what the storage recovered, and the core task around it."""
        now = self.clock.now_ms()
        self.admin.started_ms = now
        core = self._core_factory(self.config, now)
        if self.replicated:
            # Only the snapshot is known committed; the log after it is delivered again
            # once a leader confirms it (see trizab.zab.peer).
            recovered_now = attrs.evolve(recovered, txns=[])
        else:
            recovered_now = recovered
        # A core factory's core need not report progress (only asked for when someone listens).
        if self._progress is None:
            core.load(recovered_now)
        else:
            core.load(recovered_now, self._progress)
        if not self.replicated:
            # The replayed log counts towards the next snapshot, so a long tail is not replayed
            # again at every restart (ZooKeeper snapshots at start-up; we do it in the background).
            self.snapshots.applied(len(recovered.txns))
        self.admin.core = core
        if recovered.snapshot is not None:
            size = len(recovered.snapshot)
            self.snapshots.last_saved = (recovered.snapshot_zxid, size, trio.current_time())
        self.snapshots.start_walk = core.start_snapshot
        self.core_task = CoreTask(core, self.clock, self.connections, self.admin, self.snapshots)
        self.clients.sink = self.core_task
        if self.replicated:  # a member serves no clients while it elects (see runtime/accept.py)
            from trizab.server.replica import Mode

            self.clients.serving = lambda: core.mode is not Mode.OFF
        self._tree_settled()
        log.info(
            "recovered snapshot 0x%x + %d logged txns (last zxid 0x%x), epochs %d/%d",
            recovered.snapshot_zxid,
            len(recovered.txns),
            recovered.last_zxid,
            recovered.accepted_epoch,
            recovered.current_epoch,
        )
        return self.core_task

    def _log_started(self) -> None:
        config = self.config
        # Here, not at construction: a start-up that fails stays the one line saying why.
        warn_loose_key_files(config)
        engine = self.engine_name
        where = (
            f"dataDir {config.data_dir}, dataLogDir {config.data_log_dir or config.data_dir}"
            if config.data_dir is not None
            else "no dataDir"
        )
        unified = " (plain text or TLS)" if self.config.client_port_unification else ""
        plain = [f"{h}:{p}{unified}" for h, p in self.addresses]
        clients = ", ".join(plain + [f"{h}:{p} (TLS)" for h, p in self.clients.secure_addresses])
        if self.zab is not None:
            log.info(
                "trizab %s member %d serving clients on %s (storage %s, %s); quorum %s, election %s; "
                "voters %s observers %s",
                trizab_version(),
                config.server_id,
                clients,
                engine,
                where,
                _host_port(self.zab.quorum.listen_address),
                _host_port(self.zab.election.listen_address),
                sorted(self.zab.peer.voters),
                sorted(self.zab.peer.active.observers),
            )
        else:
            log.info(
                "trizab %s standalone serving ZooKeeper clients on %s (storage %s, %s)",
                trizab_version(),
                clients,
                engine,
                where,
            )

    async def _ticker(self, core_task: CoreTask) -> None:
        interval = max(self.config.tick_time / 2, 1) / 1000.0
        while True:
            await trio.sleep(interval)
            await core_task.post(Tick())


def _host_port(address: tuple[str, int] | None) -> str:
    return "-" if address is None else f"{address[0]}:{address[1]}"


async def _sum_up_log_floods() -> None:
    """Log the summary of a flood that stopped (see trizab.logflood), once per window."""
    while True:
        await trio.sleep(FLOODS.interval)
        FLOODS.flush()


async def serve(
    config: cfg.ServerConfig,
    *,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
    storage: Storage | None = None,
    clock: Clock | None = None,
) -> None:
    """Run a server until cancelled; ``task_status.started`` gets the bound client addresses."""
    await Server(config, storage=storage, clock=clock).run(task_status=task_status)
