"""The AdminServer's commands: ZooKeeper 3.8's ``/commands/<name>`` JSON, from the server's data.

Theory of operation
-------------------
ZooKeeper's ``org.apache.zookeeper.server.admin.Commands`` registers commands under a
primary name and short aliases (``monitor``/``mntr``); each answers a map that
``CommandResponse.toMap`` turns into JSON: the command's own keys, then ``command`` (the
primary name) and ``error`` (null, or a message).  An unknown name, or a command that
needs a running server while there is none (a member electing), answers HTTP 200 with
only ``command`` (the name asked for) and ``error``, as ZooKeeper 3.8 does.

:func:`run` builds that map from an :class:`AdminView`: the four-letter words'
:class:`~trizab.frontend.fourletter.Snapshot` plus what only the AdminServer shows (a
member's view of its ensemble, the last snapshot, the zoo.cfg text).  The runtime gathers
the view in the task that owns the server core; nothing here does I/O, so the shapes are
testable on their own.  Keys, nesting and value types are those of a real 3.8.0 server
(compared in ``tests/differential/test_diff_adminserver.py``); values only the JVM has
are left out, and the README lists every difference.

``snapshot`` is ZooKeeper 3.9's command (``SnapshotCommand``); the runtime answers it,
since it must wait for the snapshot to be written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from trizab.frontend import fourletter

__all__ = [
    "COMMANDS",
    "NOT_SERVING",
    "AdminView",
    "Command",
    "MemberView",
    "ServerAddress",
    "command_links",
    "lookup",
    "response",
    "run",
    "to_json",
]

NOT_SERVING = "This ZooKeeper instance is not currently serving requests"


@attrs.frozen
class ServerAddress:
    """One ``server.N`` line, as ``voting_view`` shows it."""

    quorum: str  # "host:port" (IPv6 hosts in brackets, as QuorumServer.delimitedHostString)
    election: str
    client: str  # "" when the line names no client port (and it is not this server)
    participant: bool


@attrs.frozen
class MemberView:
    """What only an ensemble member shows: its place in the ensemble (``leader``, ``zabstate``...)."""

    my_id: int
    is_leader: bool
    leader_id: int  # -1 when there is none (electing)
    leader_host: str  # "" when there is none
    voting_view: Mapping[int, ServerAddress]  # the voting members only, as getVotingView
    quorum_host: str
    quorum_port: int
    election_host: str
    election_port: int
    client_address: str
    voting: bool
    zab_state: str  # election | discovery | synchronization | broadcast


@attrs.frozen
class AdminView:
    """Everything a command may show, gathered by the task that owns the server core."""

    snapshot: fourletter.Snapshot
    serving: bool
    member: MemberView | None  # None: standalone
    initial_configuration: str | None  # a standalone server's zoo.cfg text; None for a member
    last_snapshot_zxid: int | None  # None: no snapshot yet
    last_snapshot_seconds: int  # its time (seconds since the epoch); -1 without one


Data = dict[str, Any]


@attrs.frozen
class Command:
    names: tuple[str, ...]  # primary name first
    build: Callable[[AdminView, Mapping[str, str]], Data]
    server_required: bool = True

    @property
    def primary(self) -> str:
        return self.names[0]


def _hex(n: int) -> str:
    """``Long.toHexString``: two's complement, no 0x."""
    return f"{n & 0xFFFFFFFFFFFFFFFF:x}"


def _buffer_stats() -> Data:
    # ZooKeeper's BufferStats before any sample: trizab does not measure response sizes.
    return {"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1}


def _server_stats(v: AdminView) -> Data:
    s = v.snapshot
    st = s.stats
    return {
        "packets_sent": st.packets_sent,
        "packets_received": st.packets_received,
        "fsync_threshold_exceed_count": 0,
        "client_response_stats": _buffer_stats(),
        "data_dir_size": s.data_dir_size,
        "log_dir_size": s.log_dir_size,
        "provider_null": False,
        "server_state": s.mode,
        "last_processed_zxid": s.zxid,
        "outstanding_requests": s.outstanding_requests,
        "avg_latency": float(st.avg_latency),
        "max_latency": st.max_latency,
        "min_latency": st.min_latency or 0,
        "num_alive_client_connections": len(s.connections),
        "auth_failed_count": 0,
        "non_mtlsremote_conn_count": 0,
        "non_mtlslocal_conn_count": 0,
        "uptime": s.uptime_ms,
    }


def _srvr(v: AdminView, _: Mapping[str, str]) -> Data:
    s = v.snapshot
    data: Data = {
        "version": s.version,
        "read_only": s.read_only,
        "server_stats": _server_stats(v),
        "client_response": _buffer_stats(),
    }
    if v.member is not None and v.member.is_leader:
        data["proposal_stats"] = _buffer_stats()
    data["node_count"] = s.node_count
    return data


def _connection(c: fourletter.ConnectionInfo, *, brief: bool) -> Data:
    info: Data = {
        "remote_socket_address": c.remote,
        "interest_ops": c.interest_ops,
        "outstanding_requests": c.queued,
        "packets_received": c.received,
        "packets_sent": c.sent,
    }
    if not brief and c.session_id:
        info.update(
            session_id=c.session_id,
            last_operation=fourletter.op_abbreviation(c.last_op),
            established=c.established_ms,
            session_timeout=c.timeout_ms,
            last_cxid=c.last_cxid,
            last_zxid=c.last_zxid,
            last_response_time=c.last_response_ms,
            last_latency=c.last_latency,
            min_latency=c.min_latency,
            avg_latency=c.avg_latency,
            max_latency=c.max_latency,
        )
    return info


def _stat(v: AdminView, kwargs: Mapping[str, str]) -> Data:
    data = _srvr(v, kwargs)
    # TLS connections are listed with the others: the runtime does not tell them apart here.
    data["connections"] = [_connection(c, brief=True) for c in v.snapshot.connections]
    data["secure_connections"] = []
    return data


def _cons(v: AdminView, _: Mapping[str, str]) -> Data:
    return {
        "connections": [_connection(c, brief=False) for c in v.snapshot.connections],
        "secure_connections": [],
    }


# zoo.cfg key in `conf` -> ZooKeeperServerConf.toMap's key; the values are all integers but two.
_CONF_KEYS = {
    "clientPort": "client_port",
    "dataDir": "data_dir",
    "dataLogDir": "data_log_dir",
    "tickTime": "tick_time",
    "maxClientCnxns": "max_client_cnxns",
    "minSessionTimeout": "min_session_timeout",
    "maxSessionTimeout": "max_session_timeout",
    "serverId": "server_id",
    "clientPortListenBacklog": "client_port_listen_backlog",
}


def _conf(v: AdminView, _: Mapping[str, str]) -> Data:
    lines = {key: value for key, value in v.snapshot.conf if value is not None}
    data: Data = {}
    for key, name in _CONF_KEYS.items():
        raw = lines.get(key, "")
        data[name] = raw if name in ("data_dir", "data_log_dir") else int(raw or -1)
    return data


def _dump(v: AdminView, _: Mapping[str, str]) -> Data:
    ephemerals = v.snapshot.ephemerals_by_session
    by_expiry: dict[str, list[int]] = {}
    # Sessions this server expires: a learner's are the leader's to expire, and ZooKeeper's
    # LearnerSessionTracker shows none.
    expires = v.member is None or v.member.is_leader
    for sid, (_timeout, expiry) in v.snapshot.sessions.items():
        if expires and expiry is not None:
            by_expiry.setdefault(str(expiry), []).append(sid)
    return {
        "expiry_time_to_session_ids": {when: sorted(sids) for when, sids in sorted(by_expiry.items())},
        "session_id_to_ephemeral_paths": {
            str(sid): sorted(paths) for sid, paths in sorted(ephemerals.items()) if paths
        },
    }


def _environment(v: AdminView, _: Mapping[str, str]) -> Data:
    return {"zookeeper.version": v.snapshot.version, **dict(v.snapshot.environment)}


def _leader(v: AdminView, _: Mapping[str, str]) -> Data:
    m = v.member
    if m is None:
        return {"error": "server is not initialized"}
    return {"is_leader": m.is_leader, "leader_id": m.leader_id, "leader_ip": m.leader_host}


def _monitor(v: AdminView, _: Mapping[str, str]) -> Data:
    return {key.removeprefix("zk_"): value for key, value in fourletter.mntr_rows(v.snapshot)}


def _voting_view(v: AdminView, _: Mapping[str, str]) -> Data:
    members = v.member.voting_view if v.member is not None else {}
    return {
        "current_config": {
            str(sid): {
                "server_addresses": [a.quorum],
                "election_addresses": [a.election],
                "client_address": a.client,
                "learner_type": "participant" if a.participant else "observer",
            }
            for sid, a in sorted(members.items())
        }
    }


def _watches(v: AdminView, _: Mapping[str, str]) -> Data:
    by_session = v.snapshot.watches_by_session
    return {"session_id_to_watched_paths": {str(sid): list(paths) for sid, paths in by_session.items()}}


def _watches_by_path(v: AdminView, _: Mapping[str, str]) -> Data:
    return {"path_to_session_ids": {path: list(sids) for path, sids in v.snapshot.watches_by_path.items()}}


def _watch_summary(v: AdminView, _: Mapping[str, str]) -> Data:
    s = v.snapshot
    return {
        "num_connections": len(s.watches_by_session),
        "num_paths": len(s.watches_by_path),
        "num_total_watches": sum(len(paths) for paths in s.watches_by_session.values()),
    }


def _multiple_addresses(host: str, port: int) -> Data:
    """Jackson's rendering of ZooKeeper's ``MultipleAddresses`` bean (one address here)."""
    address = f"{_delimited(host)}:{port}"
    return {
        "empty": False,
        "all_addresses": [address],
        "all_reachable_addresses": [address],
        "one": address,
        "reachable_address": address,
        "wildcard_addresses": [f"0.0.0.0:{port}"],
        "all_ports": [port],
        "all_host_strings": [host],
        "all_reachable_addresses_or_all": [address],
        "reachable_or_one": address,
    }


def _delimited(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _zabstate(v: AdminView, _: Mapping[str, str]) -> Data:
    m = v.member
    if m is None or not v.serving:
        return {"voting": False, "zabstate": ""}
    zxid = v.snapshot.zxid
    return {
        "myid": m.my_id,
        "is_leader": m.is_leader,
        "quorum_address": _multiple_addresses(m.quorum_host, m.quorum_port),
        "election_address": _multiple_addresses(m.election_host, m.election_port),
        "client_address": m.client_address,
        "voting": m.voting,
        "last_zxid": "0x" + _hex(zxid),
        "zab_epoch": zxid >> 32,
        "zab_counter": zxid & 0xFFFFFFFF,
        "zabstate": m.zab_state,
    }


def _last_snapshot(v: AdminView, _: Mapping[str, str]) -> Data:
    zxid = v.last_snapshot_zxid
    return {"zxid": _hex(-1 if zxid is None else zxid), "timestamp": v.last_snapshot_seconds}


def _dirs(v: AdminView, _: Mapping[str, str]) -> Data:
    return {"datadir_size": v.snapshot.data_dir_size, "logdir_size": v.snapshot.log_dir_size}


def _initial_configuration(v: AdminView, _: Mapping[str, str]) -> Data:
    return {"initial_configuration": v.initial_configuration}


def _stat_reset(v: AdminView, _: Mapping[str, str]) -> Data:
    v.snapshot.stats.reset()
    return {}


def _connection_stat_reset(v: AdminView, _: Mapping[str, str]) -> Data:
    if v.snapshot.reset_connection_stats is not None:
        v.snapshot.reset_connection_stats()
    return {}


def _set_trace_mask(v: AdminView, kwargs: Mapping[str, str]) -> Data:
    raw = kwargs.get("traceMask")
    if raw is None:
        return {"error": "setTraceMask requires long traceMask argument"}
    try:
        mask = int(raw, 10)
    except ValueError:
        return {"error": f"setTraceMask requires long traceMask argument, got {raw}"}
    v.snapshot.stats.trace_mask = mask
    return {"tracemask": mask}


COMMANDS: tuple[Command, ...] = (
    Command(("connection_stat_reset", "crst"), _connection_stat_reset),
    Command(("configuration", "conf", "config"), _conf),
    Command(("connections", "cons"), _cons),
    Command(("hash",), lambda v, _: {"digests": []}),  # digests are not computed (as with digest off)
    Command(("dirs",), _dirs),
    Command(("dump",), _dump),
    Command(("environment", "env", "envi"), _environment, server_required=False),
    Command(("get_trace_mask", "gtmk"), lambda v, _: {"tracemask": v.snapshot.stats.trace_mask}, False),
    Command(("initial_configuration", "icfg"), _initial_configuration),
    Command(("is_read_only", "isro"), lambda v, _: {"read_only": v.snapshot.read_only}),
    Command(("last_snapshot", "lsnp"), _last_snapshot),
    Command(("leader", "lead"), _leader),
    Command(("monitor", "mntr"), _monitor, server_required=False),
    Command(("ruok",), lambda v, _: {}),
    Command(("set_trace_mask", "stmk"), _set_trace_mask, server_required=False),
    Command(("server_stats", "srvr"), _srvr),
    Command(("stats", "stat"), _stat),
    Command(("stat_reset", "srst"), _stat_reset),
    Command(("voting_view",), _voting_view),
    Command(("watches", "wchc"), _watches),
    Command(("watches_by_path", "wchp"), _watches_by_path),
    Command(("watch_summary", "wchs"), _watch_summary),
    Command(("zabstate",), _zabstate, server_required=False),
)
# ZooKeeper 3.9's SnapshotCommand: the runtime answers it (it waits for the snapshot).
SNAPSHOT_NAMES = ("snapshot", "snap")

_BY_NAME: dict[str, Command] = {name: command for command in COMMANDS for name in command.names}


def lookup(name: str) -> Command | None:
    return _BY_NAME.get(name)


def response(command: str, data: Data | None = None, error: str | None = None) -> Data:
    """``CommandResponse.toMap``: the command's keys, then ``command`` and ``error`` (unless it set one)."""
    out: Data = dict(data or {})
    out.setdefault("command", command)
    out.setdefault("error", error)
    return out


def run(name: str, view: Callable[[], AdminView], kwargs: Mapping[str, str]) -> Data:
    """The JSON map answering ``/commands/<name>``; ``view`` is only called for a known command."""
    command = lookup(name)
    if command is None:
        return response(name, error=f"Unknown command: {name}")
    current = view()
    if command.server_required and not current.serving:
        return response(name, error=NOT_SERVING)
    return response(command.primary, command.build(current, kwargs))


def command_links(command_url: str, extra: Sequence[str] = SNAPSHOT_NAMES[:1]) -> str:
    """``/commands``: a link per primary name, sorted, as JettyAdminServer's CommandServlet prints."""
    names = sorted([c.primary for c in COMMANDS] + list(extra))
    return "".join(f'<a href="{command_url}/{name}">{name}</a>\n<br/>\n' for name in names)


def to_json(data: Data) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()
