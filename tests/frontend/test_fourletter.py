"""Four-letter word answers: whitelist, shapes that ZooKeeper 3.8 tools and kazoo parse."""

from __future__ import annotations

import re

from kazoo.client import ENVI_VERSION, ENVI_VERSION_KEY
from trizab.frontend import fourletter as fl

ALL = {"ruok", "srvr", "stat", "cons", "envi", "conf", "mntr", "wchs", "wchc", "wchp", "dump", "isro"}
ALL |= {"dirs", "srst", "crst", "gtmk", "stmk", "hash"}


def snapshot(**changes: object) -> fl.Snapshot:
    stats = fl.ServerStats()
    for latency in (1, 2, 6):
        stats.record_latency(latency)
    stats.packets_received, stats.packets_sent = 11, 12
    values: dict[str, object] = dict(
        version=fl.version_string("9.9.9"),
        mode="standalone",
        read_only=False,
        zxid=0x1F,
        node_count=8,
        approximate_data_size=54,
        outstanding_requests=0,
        stats=stats,
        connections=[
            fl.ConnectionInfo("127.0.0.1:5000", 1, 0, 9, 10, session_id=0x100, last_op=1, last_zxid=4),
            fl.ConnectionInfo("127.0.0.1:5001", 1, 0, 1, 0),
        ],
        sessions={0x100: (10000, 1_795_712_661_182)},
        ephemerals_by_session={0x100: ["/a/e"]},
        watches_by_session={0x100: ["/a", "/b"], 0x200: ["/a"]},
        watches_by_path={"/a": [0x100, 0x200], "/b": [0x100]},
        conf=[("clientPort", "2181"), ("tickTime", "2000")],
        environment=[("host.name", "h")],
    )
    values.update(changes)
    return fl.Snapshot(**values)  # type: ignore[arg-type]


def run(word: str, snap: fl.Snapshot | None = None, whitelist: set[str] = ALL) -> str:
    s = snap or snapshot()
    return fl.run(word, whitelist, lambda: s)


def test_not_whitelisted() -> None:
    called = []
    text = fl.run("envi", {"srvr"}, lambda: called.append(1))  # type: ignore[arg-type,return-value]
    assert text == "envi is not executed because it is not in the whitelist.\n"
    assert not called


def test_ruok_and_isro() -> None:
    assert run("ruok") == "imok"
    assert run("isro") == "rw"
    assert run("isro", snapshot(read_only=True)) == "ro"


def test_ruok_gathers_no_snapshot() -> None:
    # A snapshot sums every znode's size: readiness probes polling ruok must not pay for one.
    called = []
    assert fl.run("ruok", ALL, lambda: called.append(1)) == "imok"  # type: ignore[arg-type,return-value]
    assert not called


def test_envi_is_parsed_by_kazoo_as_zookeeper_3_8() -> None:
    text = run("envi")
    assert text.startswith("Environment:\n") and text.endswith("\n")
    pairs = dict(line.split("=", 1) for line in text.splitlines()[1:])
    digits = ENVI_VERSION.match(pairs[ENVI_VERSION_KEY]).group(1)  # type: ignore[union-attr]
    version = tuple(int(d) for d in digits.rstrip(".").split("."))
    assert version[:2] == (3, 8)
    assert "trizab-9.9.9" in pairs[ENVI_VERSION_KEY]
    assert pairs["host.name"] == "h"


def test_srvr_and_stat() -> None:
    srvr = run("srvr")
    lines = srvr.splitlines()
    assert lines[0].startswith("Zookeeper version: 3.8.")
    keys = [line.split(":")[0] for line in lines[1:]]
    expected = ["Latency min/avg/max", "Received", "Sent", "Connections", "Outstanding", "Zxid", "Mode"]
    assert keys == [*expected, "Node count"]
    assert "Latency min/avg/max: 1/3.0/6" in lines
    assert "Zxid: 0x1f" in lines and "Connections: 2" in lines and "Node count: 8" in lines
    stat = run("stat")
    assert stat.split("\n", 1)[1].startswith(
        "Clients:\n"
        " /127.0.0.1:5000[1](queued=0,recved=9,sent=10)\n"
        " /127.0.0.1:5001[1](queued=0,recved=1,sent=0)\n\n"
    )
    assert stat.endswith(srvr.split("\n", 1)[1])


def test_cons_full_line_for_sessions() -> None:
    text = run("cons")
    first, second, blank, end = text.split("\n")
    assert re.fullmatch(r" /127\.0\.0\.1:5000\[1\]\(queued=0,recved=9,sent=10,sid=0x100,lop=CREA,.*\)", first)
    assert second == " /127.0.0.1:5001[1](queued=0,recved=1,sent=0)"
    assert blank == "" and end == ""


def test_mntr_is_tab_separated() -> None:
    rows = dict(line.split("\t") for line in run("mntr").splitlines())
    assert rows["zk_server_state"] == "standalone"
    assert rows["zk_znode_count"] == "8"
    assert rows["zk_watch_count"] == "3"
    assert rows["zk_ephemerals_count"] == "1"
    assert rows["zk_version"].startswith("3.8.")


def test_watch_words() -> None:
    assert run("wchs") == "2 connections watching 2 paths\nTotal watches:3\n"
    assert run("wchc") == "0x100\n\t/a\n\t/b\n0x200\n\t/a\n\n"
    assert run("wchp") == "/a\n\t0x100\n\t0x200\n/b\n\t0x100\n\n"


def test_dump() -> None:
    text = run("dump")
    assert text.startswith("SessionTracker dump:\nSession Sets (1)/(1):\n1 expire at ")
    assert "ephemeral nodes dump:\nSessions with Ephemerals (1):\n0x100:\n\t/a/e\n" in text
    assert "\tip: /127.0.0.1:5001 sessionId: 0x0\n" in text


def test_conf_dirs_and_resets() -> None:
    assert run("conf") == "clientPort=2181\ntickTime=2000\n"
    assert run("dirs") == "datadir_size: 0\nlogdir_size: 0\n"
    snap = snapshot()
    assert run("srst", snap) == "Server stats reset.\n"
    assert snap.stats.packets_received == 0 and snap.stats.count == 0
    reset = []
    assert (
        run("crst", snapshot(reset_connection_stats=lambda: reset.append(1))) == "Connection stats reset.\n"
    )
    assert reset == [1]


def test_trace_mask() -> None:
    snap = snapshot()
    assert fl.run("stmk", ALL, lambda: snap, argument=5) == "5"
    assert run("gtmk", snap) == "5"


def test_negative_session_ids_print_like_java() -> None:
    assert run("wchc", snapshot(watches_by_session={-1: ["/x"]})) == "0xffffffffffffffff\n\t/x\n\n"
