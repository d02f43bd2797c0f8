"""Four-letter words: ZooKeeper's plain-text admin commands on the client port.

Theory of operation
-------------------
A connection whose first four bytes spell a known word (see
:mod:`trizab.frontend.connection`) gets a text answer and is closed, as in
ZooKeeper's ``NIOServerCnxn.checkFourLetterWord``.  :func:`run` builds that
answer from a :class:`Snapshot` of the server, which the runtime assembles in
the task that owns the server core; nothing here does I/O or reads a clock, so
the formats are testable on their own.

Formats are those of Apache ZooKeeper 3.8's command classes (``StatCommand``,
``ConsCommand``, ``EnvCommand``, ``ConfCommand``, ``MonitorCommand``,
``WatchCommand``, ``DumpCommand``, ``IsroCommand``, ``DirsCommand``, ...),
checked against a real 3.8.0 server: same line shapes, same keys, same
trailing newlines (``ruok`` and ``isro`` have none).  Java-only facts
(``java.version``, JVM memory, most of ``mntr``'s hundreds of histogram keys)
are left out or replaced by the Python equivalents in ``envi``.  The version
string starts with ``3.8.x`` so clients that parse it for feature detection
(kazoo's ``server_version()``) treat trizab as ZooKeeper 3.8.

``4lw.commands.whitelist`` guards every word: a word that is not listed gets
``"<word> is not executed because it is not in the whitelist.\\n"``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

from trizab.server.distribution import Distribution

__all__ = [
    "ZK_COMPAT_VERSION",
    "ConnectionInfo",
    "ServerStats",
    "Snapshot",
    "mntr_rows",
    "mntr_text",
    "op_abbreviation",
    "run",
    "version_string",
]

# The Apache ZooKeeper release whose protocol and behaviour trizab matches.
ZK_COMPAT_VERSION = "3.8.4"


def version_string(trizab_version: str) -> str:
    """``Version.getFullVersion()`` equivalent: ``3.8.4-trizab-<ours>, built on trizab``."""
    return f"{ZK_COMPAT_VERSION}-trizab-{trizab_version}, built on trizab"


# Request.op2String's four-letter abbreviations (used by `cons` as lop=...).
_OP_ABBREVIATIONS: dict[int, str] = {
    0: "NOTI",
    1: "CREA",
    2: "DELE",
    3: "EXIS",
    4: "GETD",
    5: "SETD",
    6: "GETA",
    7: "SETA",
    8: "GETC",
    9: "SYNC",
    11: "PING",
    12: "GET2",
    13: "CHKV",
    14: "MULT",
    15: "CRE2",
    16: "RECO",
    17: "CHKW",
    18: "REMW",
    19: "CCON",
    20: "DCON",
    21: "CTTL",
    22: "MLTR",
    100: "AUTH",
    101: "SETW",
    102: "SASL",
    103: "GETE",
    104: "GETN",
    105: "STW2",
    106: "ADDW",
    107: "WHOM",
    -10: "SESS",
    -11: "CLOS",
    -1: "ERR",
}


def op_abbreviation(opcode: int | None) -> str:
    if opcode is None:
        return "NA"
    return _OP_ABBREVIATIONS.get(opcode, "UNKNOWN")


@attrs.define
class ServerStats:
    """``ServerStats`` counters (reset by ``srst``), kept by the runtime.

    The request latencies are counted once, into ``latencies`` (the runtime's readlatency
    and updatelatency summaries, which the metrics endpoint exports and srst must not
    clear): count, total, min and max here are theirs since the last reset.
    """

    packets_received: int = 0
    packets_sent: int = 0
    trace_mask: int = 306  # ZooTrace's default mask
    latencies: Sequence[Distribution] = attrs.Factory(lambda: (Distribution("latency"),))

    def record_latency(self, latency_ms: int) -> None:
        self.latencies[0].record(latency_ms)

    def _since_reset(self) -> tuple[int, int, int | None, int]:
        count = total = largest = 0
        smallest: int | None = None
        for d in self.latencies:
            n, t, low, high = d.since_mark()
            count, total, largest = count + n, total + t, max(largest, high)
            if low is not None and (smallest is None or low < smallest):
                smallest = low
        return count, total, smallest, largest

    @property
    def count(self) -> int:
        return self._since_reset()[0]

    @property
    def total_latency(self) -> int:
        return self._since_reset()[1]

    @property
    def min_latency(self) -> int | None:
        return self._since_reset()[2]

    @property
    def max_latency(self) -> int:
        return self._since_reset()[3]

    @property
    def avg_latency(self) -> float:
        count, total, _, _ = self._since_reset()
        return round(total / count, 4) if count else 0.0

    def reset(self) -> None:
        self.packets_received = self.packets_sent = 0
        for d in self.latencies:
            d.move_mark()


@attrs.frozen
class ConnectionInfo:
    """What ``cons``/``stat`` show about one connection (``ServerCnxn.dumpConnectionInfo``)."""

    remote: str  # "127.0.0.1:38780"
    interest_ops: int  # 1 while reading, 0 otherwise
    queued: int
    received: int
    sent: int
    session_id: int | None = None
    last_op: int | None = None
    established_ms: int = 0
    timeout_ms: int = 0
    last_cxid: int = -1
    last_zxid: int = -1
    last_response_ms: int = 0
    last_latency: int = 0
    min_latency: int = 0
    avg_latency: int = 0
    max_latency: int = 0


@attrs.frozen
class Snapshot:
    """Everything a four-letter word may report, gathered by the task owning the server."""

    version: str  # full version string (see version_string)
    mode: str  # standalone | leader | follower | observer
    read_only: bool
    zxid: int
    node_count: int
    approximate_data_size: int
    outstanding_requests: int
    stats: ServerStats
    connections: Sequence[ConnectionInfo]
    # session id -> (timeout ms, expiry time ms or None)
    sessions: Mapping[int, tuple[int, int | None]]
    ephemerals_by_session: Mapping[int, Sequence[str]]
    watches_by_session: Mapping[int, Sequence[str]]
    watches_by_path: Mapping[str, Sequence[int]]
    conf: Sequence[tuple[str, str | None]]  # `conf` lines, in order (None: the key alone)
    environment: Sequence[tuple[str, str]]  # `envi` lines after zookeeper.version
    data_dir_size: int = 0
    log_dir_size: int = 0
    uptime_ms: int = 0
    open_file_descriptors: int | None = None
    max_file_descriptors: int | None = None
    # trizab's own: the last write found the disk full (writes refused until space returns).
    disk_full: bool = False
    # A member's: mntr's ensemble keys, in ZooKeeper's order (quorum_size on every member,
    # the leader's learner counts on the leader), without the zk_ prefix.
    ensemble_metrics: Sequence[tuple[str, int]] = ()
    # ZooKeeper's summaries (readlatency, fsynctime, ...) as its default metrics provider prints
    # them: avg_/min_/max_/cnt_/sum_<name>, and p50_..p999_ for the detailed ones.
    summaries: Sequence[tuple[str, int | float]] = ()
    # Hooks for the words that change state (srst, crst); None = no-op.
    reset_connection_stats: Callable[[], None] | None = None


def _hex(n: int) -> str:
    """``Long.toHexString``: two's complement for negative values."""
    return f"0x{n & 0xFFFFFFFFFFFFFFFF:x}"


def _stat_body(s: Snapshot, *, with_clients: bool) -> str:
    out = [f"Zookeeper version: {s.version}\n"]
    if s.read_only:
        out.append("READ-ONLY mode; serving only read-only clients\n")
    if with_clients:
        out.append("Clients:\n")
        for c in s.connections:
            out.append(_connection_line(c, brief=True) + "\n")
        out.append("\n")
    st = s.stats
    out.append(f"Latency min/avg/max: {st.min_latency or 0}/{st.avg_latency}/{st.max_latency}\n")
    out.append(f"Received: {st.packets_received}\n")
    out.append(f"Sent: {st.packets_sent}\n")
    out.append(f"Connections: {len(s.connections)}\n")
    out.append(f"Outstanding: {s.outstanding_requests}\n")
    out.append(f"Zxid: {_hex(s.zxid)}\n")
    out.append(f"Mode: {s.mode}\n")
    out.append(f"Node count: {s.node_count}\n")
    return "".join(out)


def _connection_line(c: ConnectionInfo, *, brief: bool) -> str:
    head = f" /{c.remote}[{c.interest_ops}](queued={c.queued},recved={c.received},sent={c.sent}"
    if brief or c.session_id is None:
        return head + ")"
    return (
        f"{head},sid={_hex(c.session_id)},lop={op_abbreviation(c.last_op)},est={c.established_ms},"
        f"to={c.timeout_ms},lcxid={_hex(c.last_cxid)},lzxid={_hex(c.last_zxid)},lresp={c.last_response_ms},"
        f"llat={c.last_latency},minlat={c.min_latency},avglat={c.avg_latency},maxlat={c.max_latency})"
    )


def _cons(s: Snapshot) -> str:
    return "".join(_connection_line(c, brief=False) + "\n" for c in s.connections) + "\n"


def _envi(s: Snapshot) -> str:
    lines = ["Environment:", f"zookeeper.version={s.version}"]
    lines += [f"{k}={v}" for k, v in s.environment]
    return "\n".join(lines) + "\n"


def _conf(s: Snapshot) -> str:
    return "".join(f"{k}={v}\n" if v is not None else f"{k}\n" for k, v in s.conf)


def mntr_rows(s: Snapshot) -> list[tuple[str, object]]:
    """``mntr``'s keys and typed values, in its order: also the AdminServer's ``monitor`` and
    what the Prometheus endpoint exports."""
    st = s.stats
    watch_count = sum(len(v) for v in s.watches_by_session.values())
    rows: list[tuple[str, object]] = [
        ("zk_version", s.version),
        ("zk_server_state", s.mode),
        ("zk_ephemerals_count", sum(len(v) for v in s.ephemerals_by_session.values())),
        ("zk_num_alive_connections", len(s.connections)),
        ("zk_avg_latency", st.avg_latency),
        ("zk_outstanding_requests", s.outstanding_requests),
        ("zk_znode_count", s.node_count),
        ("zk_global_sessions", len(s.sessions)),
        ("zk_non_mtls_remote_conn_count", 0),
        ("zk_packets_sent", st.packets_sent),
        ("zk_packets_received", st.packets_received),
        ("zk_watch_count", watch_count),
        ("zk_auth_failed_count", 0),
        ("zk_min_latency", st.min_latency or 0),
    ]
    if s.max_file_descriptors is not None:
        rows.append(("zk_max_file_descriptor_count", s.max_file_descriptors))
    rows.append(("zk_approximate_data_size", s.approximate_data_size))
    if s.open_file_descriptors is not None:
        rows.append(("zk_open_file_descriptor_count", s.open_file_descriptors))
    rows += [
        ("zk_local_sessions", 0),
        ("zk_uptime", s.uptime_ms),
        ("zk_max_latency", st.max_latency),
        ("zk_outstanding_tls_handshake", 0),
        ("zk_read_only", s.read_only),
        *((f"zk_{name}", value) for name, value in s.ensemble_metrics),
        *((f"zk_{name}", value) for name, value in s.summaries),
        ("trizab_disk_full", 1 if s.disk_full else 0),
    ]
    return rows


def mntr_text(value: object) -> str:
    """A value of :func:`mntr_rows` as ``mntr`` prints it (Java's booleans)."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _mntr(s: Snapshot) -> str:
    return "".join(f"{k}\t{mntr_text(v)}\n" for k, v in mntr_rows(s))


def _wchs(s: Snapshot) -> str:
    total = sum(len(v) for v in s.watches_by_session.values())
    return (
        f"{len(s.watches_by_session)} connections watching {len(s.watches_by_path)} paths\n"
        f"Total watches:{total}\n"
    )


def _wchc(s: Snapshot) -> str:
    out = []
    for sid, paths in s.watches_by_session.items():
        out.append(f"{_hex(sid)}\n")
        out.extend(f"\t{p}\n" for p in paths)
    return "".join(out) + "\n"


def _wchp(s: Snapshot) -> str:
    out = []
    for path, sids in s.watches_by_path.items():
        out.append(f"{path}\n")
        out.extend(f"\t{_hex(sid)}\n" for sid in sids)
    return "".join(out) + "\n"


def _date(ms: int) -> str:
    # java.util.Date.toString(): "Thu Nov 26 17:04:32 UTC 2026"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%a %b %d %H:%M:%S UTC %Y")


def _dump(s: Snapshot) -> str:
    out = ["SessionTracker dump:\n"]
    by_expiry: dict[int | None, list[int]] = {}
    for sid, (_timeout, expiry) in s.sessions.items():
        by_expiry.setdefault(expiry, []).append(sid)
    out.append(f"Session Sets ({len(by_expiry)})/({len(s.sessions)}):\n")
    for expiry in sorted(by_expiry, key=lambda e: -1 if e is None else e):
        sids = by_expiry[expiry]
        when = _date(expiry) if expiry is not None else "unknown time"
        out.append(f"{len(sids)} expire at {when}:\n")
        out.extend(f"\t{_hex(sid)}\n" for sid in sorted(sids))
    out.append("ephemeral nodes dump:\n")
    owners = {sid: paths for sid, paths in s.ephemerals_by_session.items() if paths}
    out.append(f"Sessions with Ephemerals ({len(owners)}):\n")
    for sid in sorted(owners):
        out.append(f"{_hex(sid)}:\n")
        out.extend(f"\t{p}\n" for p in sorted(owners[sid]))
    out.append("Connections dump:\n")
    out.append(f"Connections Sets (1)/({len(s.connections)}):\n")
    if s.connections:
        out.append(f"{len(s.connections)} connections:\n")
        for c in s.connections:
            out.append(f"\tip: /{c.remote} sessionId: {_hex(c.session_id or 0)}\n")
    return "".join(out)


def _srst(s: Snapshot) -> str:
    s.stats.reset()
    return "Server stats reset.\n"


def _crst(s: Snapshot) -> str:
    if s.reset_connection_stats is not None:
        s.reset_connection_stats()
    return "Connection stats reset.\n"


_COMMANDS: dict[str, Callable[[Snapshot], str]] = {
    "srvr": lambda s: _stat_body(s, with_clients=False),
    "stat": lambda s: _stat_body(s, with_clients=True),
    "cons": _cons,
    "envi": _envi,
    "conf": _conf,
    "mntr": _mntr,
    "wchs": _wchs,
    "wchc": _wchc,
    "wchp": _wchp,
    "dump": _dump,
    "isro": lambda s: "ro" if s.read_only else "rw",
    "dirs": lambda s: f"datadir_size: {s.data_dir_size}\nlogdir_size: {s.log_dir_size}\n",
    "srst": _srst,
    "crst": _crst,
    "gtmk": lambda s: str(s.stats.trace_mask),
    "hash": lambda s: "Digest computation is disabled.\n",
}


def run(
    word: str, whitelist: Iterable[str], snapshot: Callable[[], Snapshot], argument: int | None = None
) -> str:
    """The text answer to ``word``; ``snapshot`` is only called for whitelisted words."""
    if word not in whitelist:
        return f"{word} is not executed because it is not in the whitelist.\n"
    if word == "ruok":
        # Answered without a snapshot, as ZooKeeper's RuokCommand reads nothing: gathering one
        # sums every znode's size (approximate_data_size), 75 ms with 1,000,000 znodes, and
        # readiness probes poll ruok while a restarted server comes up.
        return "imok"
    if word == "stmk":
        s = snapshot()
        if argument is not None:
            s.stats.trace_mask = argument
        return str(s.stats.trace_mask)
    command = _COMMANDS.get(word)
    if command is None:
        return ""
    return command(snapshot())
