"""docs/ensemble.md and docs/backup.md, followed to the letter on three hosts.

Three network namespaces with the addresses the pages use (192.0.2.11-13) stand for the three
hosts.  In each, the test runs the pages' marked blocks (``<!-- docs-test: NAME -->``, see
:mod:`tests.docs.doc_blocks`): the firewall rules, ``myid``, the ``zoo.cfg``, the start command.
Then the page's kazoo script writes through member 1 and reads through member 3; the backup block
copies member 2's data while the ensemble runs; a znode written after the copy must not survive
the restore; every member is stopped, the restore block runs on each, the ensemble starts again
and the data the backup holds is read back.

The only changes made to the blocks are the directories: ``/var/lib/trizab``, ``/etc/trizab``
and ``/backup`` move under the test's temporary directory (one tree per host; ``/backup`` is
shared, standing for the copy an operator makes to every member), ``MYID=1`` becomes the host's
number, and ``trizab`` / ``python3`` are this environment's.  After the firewall block the
test checks that the INPUT policy is DROP, so the ensemble forms through the page's ACCEPT
rules alone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.docs.doc_blocks import tagged_blocks
from tests.docs.netns_hosts import NetnsHosts

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ADDRESSES = ["192.0.2.11", "192.0.2.12", "192.0.2.13"]
WAIT = 40.0

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


def _start_all(
    hosts: NetnsHosts, start: str, roots: list[Path], backup: Path
) -> list[subprocess.Popen[bytes]]:
    procs = []
    for sid, root in enumerate(roots, 1):
        command = _localize(start, root, backup).strip()
        procs.append(
            hosts.popen(sid, ["sh", "-c", f"exec {command}"], env=_env(), log=str(root / "trizab.log"))
        )
    for sid in range(1, len(roots) + 1):
        try:
            _python(hosts, sid, _WAIT_SERVING, ADDRESSES[sid - 1], str(WAIT))
        except AssertionError:
            logs = "\n".join(
                f"--- host {k}\n{(r / 'trizab.log').read_text()[-3000:]}" for k, r in enumerate(roots, 1)
            )
            raise AssertionError(f"member {sid} did not start serving\n{logs}") from None
    return procs


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


def test_ensemble_and_backup_pages_work_on_three_hosts(tmp_path: Path) -> None:
    ensemble = tagged_blocks("ensemble.md")
    backup_page = tagged_blocks("backup.md")
    assert ensemble["zoo.cfg"].lang == "ini" and ensemble["check"].lang == "python"
    backup = tmp_path / "backup"
    roots = [tmp_path / f"host{sid}" for sid in range(1, 4)]
    hosts = NetnsHosts(ADDRESSES)
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

        # More data, so the backup holds log records beyond the check's.
        _python(
            hosts,
            1,
            _kazoo(
                "c = client('192.0.2.11')\nfor i in range(100):\n    c.create(f'/app/n{i}', b'x')\nc.stop()\n"
            ),
        )

        # The backup, on member 2, while all three run.
        listing = _sh(hosts, 2, _localize(backup_page["backup"].text, roots[1], backup))
        assert "snapshot." in listing and "log." in listing, listing

        # Written after the copy: the restore must not have it.
        _python(hosts, 1, _kazoo("c = client('192.0.2.11')\nc.create('/after-backup', b'late')\nc.stop()\n"))

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
