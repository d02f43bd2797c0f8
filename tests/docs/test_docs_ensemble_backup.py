"""docs/ensemble.md, monitoring.md, backup.md and upgrades.md, followed to the letter on three hosts.

Three network namespaces with the addresses the pages use (192.0.2.11-13) stand for the three
hosts, and a fourth (192.0.2.20) for the Prometheus server.  In each member's, the test runs the
pages' marked blocks (``<!-- docs-test: NAME -->``, see :mod:`tests.docs.doc_blocks`): the
firewall rules, ``myid``, the ``zoo.cfg`` (with monitoring.md's metrics lines), the start
command.  Then:

* the page's kazoo script writes through member 1 and reads through member 3;
* the AdminServer block answers on every member, and is not reachable from another host;
* from the Prometheus host, every target monitoring.md's ``prometheus.yml`` names is scraped
  (Prometheus itself is not installed: :mod:`tests.docs.prometheus_docs` parses the text with
  prometheus_client's parser): the leader's ``synced_followers`` is 2, every ``quorum_size`` 3,
  ``znode_count`` grows on every member after 100 writes, and every metric the page's queries
  and alert rules name is exported; the page's own scrape script agrees; a member host cannot
  reach the metrics port (the firewall admits only the Prometheus host);
* ``trizab status`` (ensemble.md's block) shows three serving members and one leader;
* backup.md's ``trizab snapshot`` block runs on member 2, and its backup block copies the
  snapshot the command named, with the logs, while the ensemble runs; a znode written after
  the copy must not survive the restore;
* a follower is stopped (``trizab status`` then fails), a znode is written without it, it is
  started again, upgrades.md's wait block returns once it has rejoined, and the znode it missed
  is read from it;
* every member is stopped, the restore block runs on each, the ensemble starts again and the
  data the backup holds is read back.

The only changes made to the blocks are the directories: ``/var/lib/trizab``, ``/etc/trizab``
and ``/backup`` move under the test's temporary directory (one tree per host; ``/backup`` is
shared, standing for the copy an operator makes to every member), ``MYID=1`` becomes the host's
number, and ``trizab`` / ``python3`` are this environment's.  After the firewall block the
test checks that the INPUT policy is DROP, so the ensemble forms through the page's ACCEPT
rules alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.docs.doc_blocks import DocBlock, tagged_blocks
from tests.docs.netns_hosts import NetnsHosts
from tests.docs.prometheus_docs import (
    PROMETHEUS_OWN,
    SCRAPE,
    alert_rules,
    promql_metric_names,
    rule_files,
    scrape_targets,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ADDRESSES = ["192.0.2.11", "192.0.2.12", "192.0.2.13"]
PROMETHEUS_HOST = "192.0.2.20"  # host 4: monitoring.md's Prometheus server
PROMETHEUS = 4
WAIT = 40.0

# Run inside a host namespace: exit 0 if a TCP connection to argv[1]:argv[2] opens within 2 s.
_CONNECTS = textwrap.dedent(
    """
    import socket, sys
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
    except OSError:
        sys.exit(1)
    """
)

# Run inside a host namespace: wait until the member at argv[1] answers srvr with a serving mode.
_WAIT_SERVING = textwrap.dedent(
    """
    import socket, sys, time
    deadline = time.monotonic() + float(sys.argv[2])
    last = ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((sys.argv[1], 2181), timeout=1) as s:
                s.sendall(b"srvr")
                last = b"".join(iter(lambda: s.recv(4096), b"")).decode()
        except OSError as exc:
            last = repr(exc)
        for line in last.splitlines():
            if line.startswith("Mode: ") and line[6:] in ("leader", "follower", "observer"):
                print(line[6:])
                sys.exit(0)
        time.sleep(0.2)
    print("not serving:", last)
    sys.exit(1)
    """
)


def _localize(text: str, root: Path, backup: Path) -> str:
    return (
        text.replace("/var/lib/trizab", str(root / "var/lib/trizab"))
        .replace("/etc/trizab", str(root / "etc/trizab"))
        .replace("/backup", str(backup))
    )


def _with_myid(text: str, sid: int) -> str:
    assert re.search(r"^MYID=1$", text, re.M), "the block sets MYID=1 for the first host"
    return re.sub(r"^MYID=1$", f"MYID={sid}", text, count=1, flags=re.M)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def _sh(hosts: NetnsHosts, host: int, script: str) -> str:
    result = hosts.run(host, ["sh", "-e", "-c", script], env=_env())
    assert result.returncode == 0, f"host {host}: {script!r} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def _python(hosts: NetnsHosts, host: int, code: str, *args: str) -> str:
    result = hosts.run(host, [sys.executable, "-c", code, *args], env=_env(), timeout=WAIT + 20)
    assert result.returncode == 0, f"host {host}: python failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def _connects(hosts: NetnsHosts, host: int, address: str, port: int) -> bool:
    return hosts.run(host, [sys.executable, "-c", _CONNECTS, address, str(port)], env=_env()).returncode == 0


def _start(hosts: NetnsHosts, start: str, sid: int, root: Path, backup: Path) -> subprocess.Popen[bytes]:
    command = _localize(start, root, backup).strip()
    return hosts.popen(sid, ["sh", "-c", f"exec {command}"], env=_env(), log=str(root / "trizab.log"))


def _wait_serving(hosts: NetnsHosts, sids: list[int], roots: list[Path]) -> None:
    for sid in sids:
        try:
            _python(hosts, sid, _WAIT_SERVING, ADDRESSES[sid - 1], str(WAIT))
        except AssertionError:
            logs = "\n".join(
                f"--- host {k}\n{(r / 'trizab.log').read_text()[-3000:]}" for k, r in enumerate(roots, 1)
            )
            raise AssertionError(f"member {sid} did not start serving\n{logs}") from None


def _start_all(
    hosts: NetnsHosts, start: str, roots: list[Path], backup: Path
) -> list[subprocess.Popen[bytes]]:
    procs = [_start(hosts, start, sid, root, backup) for sid, root in enumerate(roots, 1)]
    _wait_serving(hosts, list(range(1, len(roots) + 1)), roots)
    return procs


def _scrape(hosts: NetnsHosts, targets: list[str]) -> dict[str, dict[str, Any]]:
    """What each target exports, scraped from the Prometheus host (see prometheus_docs.SCRAPE)."""
    return json.loads(_python(hosts, PROMETHEUS, SCRAPE, *targets))


def _status_rows(output: str) -> dict[str, str]:
    """``trizab status``'s table: server address -> role."""
    lines = output.splitlines()
    assert lines[0].split() == ["SERVER", "ROLE", "ZXID", "EPOCH", "CONNECTIONS", "OUTSTANDING", "LAG"]
    return {line.split()[0]: line.split()[1] for line in lines[1:] if line.split()[0].endswith(":2181")}


def _kazoo(code: str) -> str:
    return textwrap.dedent(
        """
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry
        def client(host):
            c = KazooClient(hosts=host + ":2181", timeout=10,
                            connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1))
            c.start(timeout=30)
            return c
        """
    ) + textwrap.dedent(code)


def _check_prometheus(
    hosts: NetnsHosts, monitoring: dict[str, DocBlock], write_through_member_1: Callable[[], None]
) -> None:
    """monitoring.md's scrape config, queries, alerts and scrape script against the running ensemble."""
    targets = scrape_targets(monitoring["prometheus.yml"].text, job="trizab")
    assert targets == [f"{a}:7000" for a in ADDRESSES]
    assert rule_files(monitoring["prometheus.yml"].text) == ["trizab-alerts.yml"]

    before = _scrape(hosts, targets)
    states = {target: before[target]["state"] for target in targets}
    assert sorted(states.values()) == ["follower", "follower", "leader"], states
    leader = next(target for target, state in states.items() if state == "leader")
    assert before[leader]["values"]["synced_followers"] == 2
    assert all(before[t]["values"]["quorum_size"] == 3 for t in targets)
    followers = [t for t in targets if t != leader]
    assert all("synced_followers" not in before[t]["values"] for t in followers)  # the leader's only

    write_through_member_1()  # 100 znodes
    deadline = time.monotonic() + WAIT
    while True:
        after = _scrape(hosts, targets)
        grown = {t: after[t]["values"]["znode_count"] - before[t]["values"]["znode_count"] for t in targets}
        if all(g >= 100 for g in grown.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert all(g >= 100 for g in grown.values()), grown

    exported = set().union(*(set(after[t]["names"]) for t in targets)) | PROMETHEUS_OWN
    queries = [q for q in monitoring["queries"].text.splitlines() if q.strip()]
    rules = alert_rules(monitoring["alerts"].text)
    assert len(rules) >= 5 and len(queries) >= 5
    for expr in [*queries, *(rule["expr"] for rule in rules)]:
        names = promql_metric_names(expr)
        assert names, expr
        assert names <= exported, f"{expr!r} reads {sorted(names - exported)}, which no member exports"

    # The page's own scrape script, run where Prometheus runs, agrees.
    script = monitoring["scrape"].text
    assert re.search(r"^TARGETS = (\[.*\])$", script, re.M)[1] == json.dumps(targets)  # type: ignore[index]
    lines = _python(hosts, PROMETHEUS, script).splitlines()
    assert [line.split()[0] for line in lines] == targets
    roles = {line.split()[0]: line.split()[1] for line in lines}
    shown = {line.split()[0]: dict(f.split("=") for f in line.split()[2:]) for line in lines}
    assert roles == states
    assert shown[leader]["synced_followers"] == "2"
    assert all(shown[t]["quorum_size"] == "3" for t in targets)
    assert all("synced_followers" not in shown[t] for t in followers)
    assert all(int(shown[t]["znode_count"]) >= after[t]["values"]["znode_count"] for t in targets)

    # Only the Prometheus host reaches the metrics port (the firewall), and the AdminServer,
    # on loopback, is reachable from no other host.
    assert _connects(hosts, PROMETHEUS, ADDRESSES[0], 7000)
    assert not _connects(hosts, 2, ADDRESSES[0], 7000)
    assert not _connects(hosts, PROMETHEUS, ADDRESSES[0], 8080)


def _check_adminserver(hosts: NetnsHosts, block: str) -> None:
    """ensemble.md's AdminServer block on every member: ruok, then srvr with the member's role."""
    decoder = json.JSONDecoder()
    for sid in range(1, len(ADDRESSES) + 1):
        out = _sh(hosts, sid, block).strip()
        ruok, end = decoder.raw_decode(out)
        srvr, _ = decoder.raw_decode(out[end:].lstrip())
        assert ruok == {"command": "ruok", "error": None}, out
        assert srvr["command"] == "server_stats" and srvr["error"] is None, out
        assert srvr["server_stats"]["server_state"] in ("leader", "follower"), out


def test_ensemble_monitoring_and_backup_pages_work_on_three_hosts(tmp_path: Path) -> None:
    ensemble = tagged_blocks("ensemble.md")
    monitoring = tagged_blocks("monitoring.md")
    backup_page = tagged_blocks("backup.md")
    upgrades = tagged_blocks("upgrades.md")
    assert ensemble["zoo.cfg"].lang == "ini" and ensemble["check"].lang == "python"
    # ensemble.md's zoo.cfg turns the metrics on with monitoring.md's lines.
    zoo_cfg_lines = ensemble["zoo.cfg"].text.splitlines()
    assert all(line in zoo_cfg_lines for line in monitoring["metrics.cfg"].text.splitlines())
    backup = tmp_path / "backup"
    roots = [tmp_path / f"host{sid}" for sid in range(1, 4)]
    hosts = NetnsHosts([*ADDRESSES, PROMETHEUS_HOST])
    try:
        for sid, root in enumerate(roots, 1):
            _sh(hosts, sid, ensemble["firewall"].text)
            rules = _sh(hosts, sid, "iptables -S INPUT")
            assert "-P INPUT DROP" in rules, rules
            _sh(hosts, sid, _localize(_with_myid(ensemble["myid"].text, sid), root, backup))
            config = root / "etc/trizab/zoo.cfg"
            config.write_text(_localize(ensemble["zoo.cfg"].text, root, backup))
            assert (root / "var/lib/trizab/myid").read_text().strip() == str(sid)
        procs = _start_all(hosts, ensemble["start"].text, roots, backup)

        # The page's own kazoo script, run on host 3: write via member 1, read via member 3.
        out = _python(hosts, 3, ensemble["check"].text)
        assert out == "written through member 1\n"

        _check_adminserver(hosts, ensemble["adminserver"].text)

        # More data (so the backup holds log records beyond the check's), watched from Prometheus.
        def write_through_member_1() -> None:
            _python(
                hosts,
                1,
                _kazoo(
                    "c = client('192.0.2.11')\n"
                    "for i in range(100):\n    c.create(f'/app/n{i}', b'x')\nc.stop()\n"
                ),
            )

        _check_prometheus(hosts, monitoring, write_through_member_1)

        # trizab status, on host 1, with the page's command.
        status = _sh(hosts, 1, _localize(ensemble["status"].text, roots[0], backup))
        roles = _status_rows(status)
        assert list(roles) == [f"{a}:2181" for a in ADDRESSES], status
        assert sorted(roles.values()) == ["follower", "follower", "leader"], status
        leader_address = next(a for a, role in roles.items() if role == "leader")
        assert status.splitlines()[-1] == f"leader: {leader_address}", status

        # The backup, on member 2, while all three run: a fresh snapshot first, then the copy.
        taken = _sh(hosts, 2, _localize(backup_page["snapshot"].text, roots[1], backup))
        m = re.fullmatch(r"snapshot taken at zxid 0x([0-9a-f]+), [\d,]+ bytes\n", taken)
        assert m is not None, taken
        listing = _sh(hosts, 2, _localize(backup_page["backup"].text, roots[1], backup))
        assert "log." in listing, listing
        assert [f.name for f in (backup / "trizab/version-2").glob("snapshot.*")] == [f"snapshot.{m[1]}"]

        # Written after the copy: the restore must not have it.
        _python(hosts, 1, _kazoo("c = client('192.0.2.11')\nc.create('/after-backup', b'late')\nc.stop()\n"))

        # A rolling restart of a follower: status fails while it is down, and upgrades.md's wait
        # returns once it has rejoined.
        follower = next(k for k, a in enumerate(ADDRESSES, 1) if roles[f"{a}:2181"] == "follower")
        assert hosts.stop(procs[follower - 1]) == 0
        status_cmd = _localize(ensemble["status"].text, roots[0], backup)
        down = hosts.run(1, ["sh", "-c", status_cmd], env=_env())
        assert down.returncode == 1, down.stdout + down.stderr
        assert _status_rows(down.stdout)[f"{ADDRESSES[follower - 1]}:2181"] == "unreachable", down.stdout
        leader_host = leader_address.removesuffix(":2181")
        write_missed = f"c = client('{leader_host}')\nc.create('/while-down', b'missed')\nc.stop()\n"
        _python(hosts, ADDRESSES.index(leader_host) + 1, _kazoo(write_missed))
        procs[follower - 1] = _start(hosts, ensemble["start"].text, follower, roots[follower - 1], backup)
        waited = _sh(hosts, 1, _localize(upgrades["wait-rejoined"].text, roots[0], backup))
        assert _status_rows(waited)[f"{ADDRESSES[follower - 1]}:2181"] == "follower", waited
        # Serving means synced: the write it missed is there, read from it without a sync.
        read_missed = f"c = client('{ADDRESSES[follower - 1]}')\nprint(c.get('/while-down')[0].decode())\n"
        assert _python(hosts, follower, _kazoo(read_missed + "c.stop()\n")) == "missed\n"

        for proc in procs:
            assert hosts.stop(proc) == 0
        for sid, root in enumerate(roots, 1):
            _sh(hosts, sid, _localize(_with_myid(backup_page["restore"].text, sid), root, backup))
            assert (root / "var/lib/trizab.before-restore/version-2").is_dir()
            assert (root / "var/lib/trizab/myid").read_text().strip() == str(sid)
        _start_all(hosts, ensemble["start"].text, roots, backup)

        read_back = _kazoo(
            """
            c = client('192.0.2.12')
            c.sync('/app')
            print(c.get('/app')[0].decode(), len(c.get_children('/app')), c.exists('/after-backup') is None)
            c.stop()
            """
        )
        assert _python(hosts, 3, read_back) == "written through member 1 100 True\n"
    finally:
        hosts.close()
