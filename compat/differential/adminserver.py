"""Compare the AdminServer's JSON of Apache ZooKeeper 3.8 and trizab, command by command.

Theory of operation
-------------------
Both servers run the same workload (:func:`workload`: a session with an ephemeral node
and three watches), then every command of :data:`COMMANDS` is fetched from both.  What
must match is the *shape* of each answer: the HTTP status, the keys (recursively) and the
JSON type of every value (``int``, ``float``, ``str``, ``bool``, ``null``, list, object).
Values themselves depend on the run (ports, paths, session ids, times, counters) and are
not compared, except ``command`` and ``error``, which must be equal.

Normalised, each for the reason given beside it in :data:`_DYNAMIC_MAPS`,
:data:`_ZOOKEEPER_ONLY` and :data:`_TRIZAB_ONLY` (and listed in the README):

* maps keyed by a session id, an expiry time or a path: their keys differ by run, so each
  value is compared with the first value of the other side instead;
* keys only the JVM has (``java.*`` in ``environment``, its memory), keys only trizab has
  (its own version, Python's), and ``monitor``'s hundreds of metrics-provider summaries
  that trizab does not keep: every other ``monitor`` key trizab shows must exist in
  ZooKeeper with the same type, and the keys of :data:`MONITOR_REQUIRED` must be present.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

# The commands compared: the primary names and the aliases ZooKeeper 3.8 has.
COMMANDS = (
    "ruok",
    "srvr",
    "server_stats",
    "stat",
    "stats",
    "monitor",
    "mntr",
    "conf",
    "configuration",
    "connections",
    "cons",
    "environment",
    "envi",
    "leader",
    "voting_view",
    "watches",
    "wchc",
    "watches_by_path",
    "wchp",
    "watch_summary",
    "wchs",
    "dump",
    "is_read_only",
    "isro",
    "last_snapshot",
    "lsnp",
    "initial_configuration",
    "icfg",
    "zabstate",
    "dirs",
    "get_trace_mask",
    "hash",
    "no_such_command",
)

# monitor keys health checks read (ZooKeeper Administrator's Guide), which trizab must show.
MONITOR_REQUIRED = (
    "version",
    "avg_latency",
    "max_latency",
    "min_latency",
    "packets_received",
    "packets_sent",
    "num_alive_connections",
    "outstanding_requests",
    "server_state",
    "znode_count",
    "watch_count",
    "ephemerals_count",
    "approximate_data_size",
    "open_file_descriptor_count",
    "max_file_descriptor_count",
)
MONITOR_LEADER_REQUIRED = ("learners", "synced_followers", "pending_syncs")

# (command, key path) of maps whose keys are session ids, expiry times, paths or server ids:
# they differ by run, so only the shape of their values is compared.
_DYNAMIC_MAPS = {
    ("dump", "expiry_time_to_session_ids"),  # expiry time -> session ids
    ("dump", "session_id_to_ephemeral_paths"),  # session id -> paths
    ("watches", "session_id_to_watched_paths"),  # session id -> paths
    ("watches_by_path", "path_to_session_ids"),  # path -> session ids
    ("voting_view", "current_config"),  # server id -> addresses
}
# Keys only ZooKeeper shows, by command: reported, not required.
_ZOOKEEPER_ONLY: dict[str, tuple[str, ...]] = {
    # The JVM's own facts (trizab shows the Python interpreter's instead, below).
    "environment": (
        "java.version",
        "java.vendor",
        "java.home",
        "java.class.path",
        "java.library.path",
        "java.io.tmpdir",
        "java.compiler",
        "os.memory.free",
        "os.memory.max",
        "os.memory.total",
    ),
}
# Keys only trizab shows, by command.
_TRIZAB_ONLY: dict[str, tuple[str, ...]] = {
    "environment": (
        "trizab.version",  # trizab's own version (zookeeper.version names the ZooKeeper it matches)
        "python.version",  # the interpreter, in place of java.*
        "python.implementation",
        "python.executable",
        "trio.version",
        "process.id",
    ),
    # trizab's own gauges in mntr (README: "Four-letter words").
    "monitor": ("trizab_disk_full", "read_only"),
}
_PRIMARY = {
    "srvr": "server_stats",
    "stat": "stats",
    "mntr": "monitor",
    "conf": "configuration",
    "cons": "connections",
    "envi": "environment",
    "wchc": "watches",
    "wchp": "watches_by_path",
    "wchs": "watch_summary",
    "isro": "is_read_only",
    "lsnp": "last_snapshot",
    "icfg": "initial_configuration",
}


def fetch(port: int, command: str, *, host: str = "127.0.0.1", timeout: float = 10.0) -> tuple[int, Any]:
    """(HTTP status, parsed JSON) of ``/commands/<command>``."""
    url = f"http://{host}:{port}/commands/{command}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def workload(address: str) -> Any:
    """The same state on both servers: a session with an ephemeral node and three watches.

    Returns the started KazooClient (stop it after the comparison: its session is shown).
    """
    from kazoo.client import KazooClient

    client = KazooClient(address, timeout=15)
    client.start(timeout=30)
    client.create("/admin-diff", b"x", ephemeral=True)
    client.get("/admin-diff", watch=lambda event: None)
    client.exists("/admin-diff-missing", watch=lambda event: None)
    client.get_children("/", watch=lambda event: None)
    client.sync("/")
    return client


def shape(value: Any) -> Any:
    """The JSON type structure of ``value``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if value is None:
        return "null"
    if isinstance(value, list):
        return ["list", *sorted({json.dumps(shape(v), sort_keys=True) for v in value})]
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    return type(value).__name__


def compare(
    command: str, zookeeper: tuple[int, Any], trizab: tuple[int, Any], *, leader: bool = False
) -> tuple[list[str], list[str]]:
    """(differences, notes) between the two answers to ``command``."""
    primary = _PRIMARY.get(command, command)
    diffs: list[str] = []
    notes: list[str] = []
    (zk_status, zk), (tz_status, tz) = zookeeper, trizab
    if zk_status != tz_status:
        diffs.append(f"{command}: HTTP status {zk_status} (ZooKeeper) vs {tz_status} (trizab)")
    if not isinstance(zk, dict) or not isinstance(tz, dict):
        diffs.append(f"{command}: not a JSON object: {zk!r} vs {tz!r}")
        return diffs, notes
    for key in ("command", "error"):
        if zk.get(key) != tz.get(key):
            diffs.append(f"{command}: {key} is {zk.get(key)!r} (ZooKeeper) vs {tz.get(key)!r} (trizab)")
    if primary == "monitor":
        return _compare_monitor(zk, tz, diffs, notes, leader=leader)
    zk_only = set(_ZOOKEEPER_ONLY.get(primary, ()))
    tz_only = set(_TRIZAB_ONLY.get(primary, ()))
    missing = sorted(set(zk) - set(tz) - zk_only)
    extra = sorted(set(tz) - set(zk) - tz_only)
    if missing:
        diffs.append(f"{command}: keys only ZooKeeper has: {missing}")
    if extra:
        diffs.append(f"{command}: keys only trizab has: {extra}")
    noted = sorted((set(zk) - set(tz)) & zk_only)
    if noted:
        notes.append(f"{command}: ZooKeeper-only keys (JVM): {noted}")
    for key in sorted(set(zk) & set(tz)):
        _compare_value(f"{command}.{key}", zk[key], tz[key], diffs, dynamic=(primary, key) in _DYNAMIC_MAPS)
    return diffs, notes


def _compare_value(where: str, zk: Any, tz: Any, diffs: list[str], *, dynamic: bool = False) -> None:
    if dynamic and isinstance(zk, dict) and isinstance(tz, dict):
        if zk and tz:
            _compare_value(where + ".*", next(iter(zk.values())), next(iter(tz.values())), diffs)
        elif bool(zk) != bool(tz):
            diffs.append(f"{where}: {len(zk)} entries (ZooKeeper) vs {len(tz)} (trizab)")
        return
    if isinstance(zk, dict) and isinstance(tz, dict):
        missing, extra = sorted(set(zk) - set(tz)), sorted(set(tz) - set(zk))
        if missing:
            diffs.append(f"{where}: keys only ZooKeeper has: {missing}")
        if extra:
            diffs.append(f"{where}: keys only trizab has: {extra}")
        for key in sorted(set(zk) & set(tz)):
            _compare_value(f"{where}.{key}", zk[key], tz[key], diffs)
        return
    if isinstance(zk, list) and isinstance(tz, list):
        if bool(zk) != bool(tz):
            diffs.append(f"{where}: {len(zk)} items (ZooKeeper) vs {len(tz)} (trizab)")
        elif zk:
            _compare_value(where + "[0]", zk[0], tz[0], diffs)
        return
    if shape(zk) != shape(tz):
        diffs.append(f"{where}: {shape(zk)} (ZooKeeper, {zk!r}) vs {shape(tz)} (trizab, {tz!r})")


def _compare_monitor(
    zk: Mapping[str, Any], tz: Mapping[str, Any], diffs: list[str], notes: list[str], *, leader: bool
) -> tuple[list[str], list[str]]:
    required = MONITOR_REQUIRED + (MONITOR_LEADER_REQUIRED if leader else ())
    for key in required:
        if key not in tz:
            diffs.append(f"monitor: trizab lacks {key}")
        if key not in zk:
            diffs.append(f"monitor: ZooKeeper lacks {key} (the comparison's list is wrong)")
    tz_only = set(_TRIZAB_ONLY["monitor"])
    for key in sorted(set(tz) - {"command", "error"}):
        if key in tz_only:
            continue
        if key not in zk:
            diffs.append(f"monitor: {key} is not one of ZooKeeper's keys")
        else:
            _compare_value(f"monitor.{key}", zk[key], tz[key], diffs)
    absent = sorted(set(zk) - set(tz))
    notes.append(f"monitor: {len(absent)} of ZooKeeper's {len(zk)} keys are not kept by trizab")
    return diffs, notes


def compare_servers(
    zookeeper_port: int, trizab_port: int, *, commands: Iterable[str] = COMMANDS, leader: bool = False
) -> tuple[list[str], list[str]]:
    """Fetch every command from both AdminServers and compare; (differences, notes)."""
    diffs: list[str] = []
    notes: list[str] = []
    for command in commands:
        d, n = compare(command, fetch(zookeeper_port, command), fetch(trizab_port, command), leader=leader)
        diffs += d
        notes += n
    return diffs, notes
