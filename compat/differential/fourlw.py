"""Compare four-letter-word replies and the connection handshake of two servers.

Theory of operation
-------------------
Four-letter words are plain text meant for people and monitoring scripts, so
what must match is the *shape*: which fields appear, in which order, and the
format of each value.  Each reply is parsed into ``(key, value)`` pairs and
every value whose content legitimately differs (versions, ports, paths,
counters, latencies, JVM facts) is replaced by the name of its format class
after checking it matches that format (``INT``, ``HEX``, ``LATENCY``,
``VERSION``, ...).  A value of the wrong format stays raw and shows as a
difference.

``envi``: the keys describing the JVM (``java.*``, ``os.memory.*``) are
reported, not required, since trizab runs on Python; the other keys must match
in order.  ``mntr`` in ZooKeeper 3.8 prints several hundred metrics in hash order.  The
comparison requires the monitoring keys documented in the ZooKeeper
Administrator's Guide (what ``check_zookeeper``-style tools read) with their
formats; the other keys are reported as information, not failure.

The handshake comparison sends ConnectRequests that exercise every branch of
``ZooKeeperServer.processConnectRequest`` (timeout clamping, old clients
without the readOnly flag, resuming with a good or bad password or an unknown
id, a client that has seen a future zxid, garbage) and compares the
normalized ConnectResponse and whether the connection stays open.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from typing import Any

from compat.differential.client import Closed, RawClient, TimedOut
from trizab.wire import jute
from trizab.wire import records as r
from trizab.wire.codes import OpCode

WORDS = ("ruok", "isro", "srvr", "stat", "conf", "envi", "mntr", "cons", "wchs", "xyzw")

MNTR_REQUIRED = (
    "zk_version",
    "zk_avg_latency",
    "zk_max_latency",
    "zk_min_latency",
    "zk_packets_received",
    "zk_packets_sent",
    "zk_num_alive_connections",
    "zk_outstanding_requests",
    "zk_server_state",
    "zk_znode_count",
    "zk_watch_count",
    "zk_ephemerals_count",
    "zk_approximate_data_size",
    "zk_open_file_descriptor_count",
    "zk_max_file_descriptor_count",
)

_FORMATS: dict[str, re.Pattern[str]] = {
    "VERSION": re.compile(r"^3\.8\.\d+(-\S*)?, built on .+$"),
    "INT": re.compile(r"^-?\d+$"),
    "FLOAT": re.compile(r"^-?\d+\.\d+$"),
    "HEX": re.compile(r"^0x[0-9a-f]+$"),
    "LATENCY": re.compile(r"^\d+/\d+\.\d+/\d+$"),
    "CLIENT": re.compile(r"^ /127\.0\.0\.1:\d+\[\d+\]\(queued=\d+,recved=\d+,sent=\d+(,.*)?\)$"),
    "PATH": re.compile(r"^/.*$"),
    "ANY": re.compile(r"^.*$"),
}


def _fmt(kind: str) -> Callable[[str], Any]:
    def check(value: str) -> Any:
        return kind if _FORMATS[kind].match(value) else ("bad-" + kind, value)

    return check


def _exact(value: str) -> Any:
    return value


_SRVR_FIELDS: dict[str, Callable[[str], Any]] = {
    "Zookeeper version": _fmt("VERSION"),
    "Latency min/avg/max": _fmt("LATENCY"),
    "Received": _fmt("INT"),
    "Sent": _fmt("INT"),
    "Connections": _fmt("INT"),
    "Outstanding": _fmt("INT"),
    "Zxid": _fmt("HEX"),
    "Mode": _exact,
    "Node count": _fmt("INT"),
}

_CONF_FIELDS: dict[str, Callable[[str], Any]] = {
    "clientPort": _fmt("INT"),
    "dataDir": _fmt("PATH"),
    "dataDirSize": _fmt("INT"),
    "dataLogDir": _fmt("PATH"),
    "dataLogSize": _fmt("INT"),
}

_MNTR_FIELDS: dict[str, Callable[[str], Any]] = {
    "zk_version": _fmt("VERSION"),
    "zk_avg_latency": _fmt("FLOAT"),
    "zk_server_state": _exact,
}


def _parse_srvr(text: str) -> Any:
    out: list[Any] = []
    for line in text.split("\n"):
        if line == "Clients:":
            out.append(("Clients:",))
        elif line.startswith(" /"):
            out.append(("client", _fmt("CLIENT")(line)))
        elif ": " in line:
            key, value = line.split(": ", 1)
            out.append((key, _SRVR_FIELDS.get(key, _exact)(value)))
        else:
            out.append(("line", line))
    return out


def _parse_conf(text: str) -> Any:
    out: list[Any] = []
    for line in text.split("\n"):
        if "=" in line:
            key, value = line.split("=", 1)
            out.append((key, _CONF_FIELDS.get(key, _exact)(value)))
        else:
            out.append(("line", line))
    return out


def _parse_envi(text: str) -> Any:
    out: list[Any] = []
    for line in text.split("\n"):
        if "=" in line:
            key, value = line.split("=", 1)
            out.append((key, _fmt("VERSION")(value) if key == "zookeeper.version" else "VALUE"))
        else:
            out.append(("line", line))
    return out


def _parse_mntr(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in text.split("\n"):
        if not line:
            continue
        if "\t" not in line:
            out[line] = ("not-key-tab-value",)
            continue
        key, value = line.split("\t", 1)
        check = _MNTR_FIELDS.get(key)
        if check is None:
            check = _fmt("INT") if _FORMATS["INT"].match(value) else _fmt("FLOAT")
        out[key] = check(value)
    return out


def _parse_lines(text: str) -> Any:
    return [
        ("client", _fmt("CLIENT")(line)) if line.startswith(" /") else ("line", re.sub(r"\d+", "N", line))
        for line in text.split("\n")
    ]


PARSERS: dict[str, Callable[[str], Any]] = {
    "srvr": _parse_srvr,
    "stat": _parse_srvr,
    "conf": _parse_conf,
    "envi": _parse_envi,
    "cons": _parse_lines,
    "wchs": _parse_lines,
}


def four_letter_word(address: tuple[str, int], word: str, timeout: float = 5.0) -> str:
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(word.encode("ascii"))
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def normalized_words(address: tuple[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for word in WORDS:
        text = four_letter_word(address, word)
        if word == "mntr":
            parsed = _parse_mntr(text)
            out["mntr(required keys)"] = {k: parsed.get(k, "MISSING") for k in MNTR_REQUIRED}
            out["mntr(all keys)"] = parsed
        else:
            out[word] = PARSERS.get(word, lambda t: t)(text)
    return out


def _is_jvm_key(key: str) -> bool:
    return key.startswith(("java.", "os.memory."))


def _split_envi(fields: list[Any]) -> tuple[list[str], list[Any]]:
    """``(JVM-specific keys, the other fields in order)``; non-ZooKeeper extras are dropped."""
    known = {"zookeeper.version", "host.name", "os.name", "os.arch", "os.version"}
    known |= {"user.name", "user.home", "user.dir", "line"}
    jvm = [f[0] for f in fields if _is_jvm_key(f[0])]
    portable = [f for f in fields if f[0] in known]
    return jvm, portable


def compare_words(expected: tuple[str, int], actual: tuple[str, int]) -> tuple[list[str], list[str]]:
    """``(differences, notes)``: differences fail the suite, notes are informational."""
    a = normalized_words(expected)
    b = normalized_words(actual)
    diffs: list[str] = []
    notes: list[str] = []
    for key in a:
        if key == "mntr(all keys)":
            missing = sorted(set(a[key]) - set(b[key]))
            extra = sorted(set(b[key]) - set(a[key]))
            if missing or extra:
                notes.append(f"mntr: {len(missing)} ZooKeeper metrics not reported, {len(extra)} extra")
            continue
        if key == "envi":
            # java.* and os.memory.* describe the JVM, which trizab does not have; the other keys
            # (zookeeper.version first, host, OS and user facts) must appear in ZooKeeper's order.
            jvm_a, portable_a = _split_envi(a[key])
            jvm_b, portable_b = _split_envi(b[key])
            if portable_a != portable_b:
                diffs.append(f"envi: zookeeper {portable_a!r}\n    trizab    {portable_b!r}")
            if jvm_a != jvm_b:
                notes.append(f"envi: JVM keys {jvm_a} vs {jvm_b}")
            continue
        if a[key] != b[key]:
            diffs.append(f"{key}: zookeeper {a[key]!r}\n    trizab    {b[key]!r}")
    return diffs, notes


# ---------------------------------------------------------------------------
# handshake


def _response_value(resp: Any, client: RawClient, known: dict[int, str]) -> Any:
    if isinstance(resp, Closed | TimedOut):
        return type(resp).__name__
    still_open = not client.closed
    if still_open:
        # An expired/refused session is answered and then closed: look for the close.
        frame = client.read_frame(0.3)
        still_open = not isinstance(frame, Closed)
    return {
        "record": type(resp).__name__,
        "protocolVersion": resp.protocol_version,
        "timeOut": resp.time_out,
        "sessionId": 0 if resp.session_id == 0 else known.get(resp.session_id, "new"),
        "passwd": None if resp.passwd is None else ("zero" if not any(resp.passwd) else len(resp.passwd)),
        "readOnly": getattr(resp, "read_only", None),
        "open": still_open,
    }


def handshake_outcomes(address: tuple[str, int]) -> list[Any]:
    """The normalized result of each handshake case against one server."""
    out: list[Any] = []
    known: dict[int, str] = {}
    opened: list[tuple[RawClient, Any]] = []

    def attempt(name: str, payload: bytes) -> tuple[RawClient, Any]:
        client = RawClient(address, timeout=3.0)
        opened.append((client, None))
        client.send_raw(payload)
        raw = client.read_frame_bytes()
        if isinstance(raw, bytes):
            cls = r.ConnectResponseNoRO if len(raw) == 36 else r.ConnectResponse
            try:
                resp: Any = jute.decode(cls, raw)
            except jute.JuteError:
                resp = ("undecodable", raw.hex())
        else:
            resp = raw
        value = resp if isinstance(resp, tuple) else _response_value(resp, client, known)
        out.append((name, value))
        opened[-1] = (client, resp)
        return client, resp

    def req(
        time_out: int = 10_000, sid: int = 0, pw: bytes = b"\0" * 16, zxid: int = 0, ro: bool = False
    ) -> bytes:
        return jute.encode(r.ConnectRequest(0, zxid, time_out, sid, pw, ro))

    first, resp = attempt("new session", req())
    assert not isinstance(resp, tuple | Closed | TimedOut), resp
    known[resp.session_id] = "first"
    attempt("timeout below min", req(time_out=1))
    attempt("timeout above max", req(time_out=10**7))
    attempt("timeout zero", req(time_out=0))
    attempt(
        "no readOnly flag (pre-3.4 client)", jute.encode(r.ConnectRequestNoRO(0, 0, 10_000, 0, b"\0" * 16))
    )
    attempt("readOnly client on rw server", req(ro=True))
    first.close()
    attempt("resume with right password", req(sid=resp.session_id, pw=resp.passwd))
    attempt("resume with wrong password", req(sid=resp.session_id, pw=b"\1" * 16))
    attempt("resume unknown session", req(sid=0x0123456789, pw=b"\0" * 16))
    attempt("lastZxidSeen ahead of server", req(zxid=1 << 40))
    attempt("protocol version 1", jute.encode(r.ConnectRequest(1, 0, 10_000, 0, b"\0" * 16, False)))
    attempt("short password", req(pw=b"\0" * 3))
    attempt("null password", jute.encode(r.ConnectRequest(0, 0, 10_000, 0, None, False)))
    attempt("truncated request", b"\0\0\0\0\0")
    attempt("empty frame", b"")
    # Close every session these made: one left to expire would spend a zxid at a moment that
    # depends on timing, in the middle of whatever runs next on the same server.  Each one is
    # resumed on a fresh connection and closed there, whatever became of the connection that
    # made it: closing on those left the first session alive on ZooKeeper 3.8 (seen with
    # ``dump``), and its expiry 10 s later made a later differential example flaky.
    made: dict[int, bytes] = {}
    for client, resp in opened:
        if isinstance(resp, r.ConnectResponse | r.ConnectResponseNoRO) and resp.time_out > 0:
            made.setdefault(resp.session_id, resp.passwd)
        client.close()
    for session_id, passwd in made.items():
        closer = RawClient(address, timeout=3.0)
        resumed = closer.connect(time_out=10_000, session_id=session_id, passwd=passwd)
        if isinstance(resumed, r.ConnectResponse | r.ConnectResponseNoRO) and resumed.time_out > 0:
            xid = closer.next_xid()
            if closer.send(xid, OpCode.CLOSE_SESSION):
                closer.read_until_xid(xid)
        closer.close()
    return out


def compare_handshakes(expected: tuple[str, int], actual: tuple[str, int]) -> list[str]:
    a = handshake_outcomes(expected)
    b = handshake_outcomes(actual)
    return [
        f"handshake {x[0]}: zookeeper {x[1]!r}\n    trizab    {y[1]!r}"
        for x, y in zip(a, b, strict=True)
        if x != y
    ]
