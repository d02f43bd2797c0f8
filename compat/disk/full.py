"""A data directory that fills up, on a real server: what clients see, and what is kept.

``python -m compat.disk.full --system trizab|zookeeper|both`` (root: it mounts a tmpfs) runs the
scenario and prints one line of JSON per system; tests/disk/test_disk_full.py asserts on trizab's.

Standalone, dataDir on a 16 MiB tmpfs, a kazoo client with a 6 s session:

1. create ``/df`` (and an ephemeral node), set a data watch on ``/df``;
2. fill the disk, then setData ``/df`` with 1 KiB values (1, 2, ...) until one fails or 300
   were tried: each outcome is recorded (``ok`` or the exception's name);
3. with the disk still full: read ``/df``, wait 10 s (longer than the session) and check the
   session and its ephemeral survived, and read ``mntr``;
4. free the disk and retry setData until it succeeds (how long it took);
5. restart the server and read ``/df`` back: its value must be the last acknowledged one.

``--system trizab-3``: three members, member 1's dataDir on the small tmpfs; once it is full,
200 writes through the other two must succeed, and after the disk is freed member 1 must catch up.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from testkit.apache_zk import ApacheZooKeeper
from testkit.process import TrizabProcess, four_letter_word
from testkit.tmpfs import SmallDisk

DISK_BYTES = 16 << 20
SESSION_S = 6.0
MAX_WRITES = 300
OP_TIMEOUT_S = 5.0  # a request the server never answers (it died) counts as failed


def _client(address: str) -> KazooClient:
    c = KazooClient(hosts=address, timeout=SESSION_S)
    c.start(timeout=30)
    return c


def _scenario(address: str, disk: SmallDisk, restart: Any, alive: Any, log_text: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    c = _client(address)
    fired = threading.Event()
    try:
        c.create("/df", b"0")
        c.create("/df-eph", b"", ephemeral=True)
        session = c.client_id[0]
        c.get("/df", watch=lambda _event: fired.set())
        out["filler_bytes"] = disk.fill()
        outcomes: list[str] = []
        acknowledged = b"0"
        for i in range(1, MAX_WRITES + 1):
            value = str(i).encode() + b"." * 1024
            try:
                c.set_async("/df", value).get(timeout=OP_TIMEOUT_S)
            except KazooException as exc:
                outcomes.append(type(exc).__name__)
                if len(outcomes) - outcomes.count("ok") >= 5:
                    break
                continue
            except Exception as exc:  # no answer (the server died) or the connection was lost
                outcomes.append(type(exc).__name__)
                break
            outcomes.append("ok")
            acknowledged = value
        out["writes"] = {k: outcomes.count(k) for k in dict.fromkeys(outcomes)}
        out["first_failure"] = next((o for o in outcomes if o != "ok"), None)
        out["server_alive_after_writes"] = alive()
        try:
            value = c.get_async("/df").get(timeout=OP_TIMEOUT_S)[0]
            out["read_while_full"] = "last acknowledged" if value == acknowledged else "stale"
        except Exception as exc:
            out["read_while_full"] = type(exc).__name__
        time.sleep(SESSION_S + 4)
        try:
            eph = c.exists_async("/df-eph").get(timeout=OP_TIMEOUT_S)
            out["session_kept"] = c.client_id is not None and c.client_id[0] == session and bool(eph)
        except Exception as exc:
            out["session_kept"] = type(exc).__name__
        try:
            mntr = four_letter_word("127.0.0.1", int(address.rsplit(":", 1)[1]), "mntr")
            out["mntr_disk_full"] = dict(
                line.split("\t", 1) for line in mntr.splitlines() if "\t" in line
            ).get("trizab_disk_full")
        except OSError as exc:
            out["mntr_disk_full"] = type(exc).__name__
        disk.free()
        started = time.monotonic()
        resumed = None
        while time.monotonic() - started < 20:
            try:
                c.set_async("/df", b"after").get(timeout=OP_TIMEOUT_S)
                acknowledged = b"after"
                resumed = round(time.monotonic() - started, 2)
                break
            except Exception:
                time.sleep(0.1)
        out["resumed_after_s"] = resumed
        out["watch_fired"] = fired.wait(5)
        out["disk_full_log_lines"] = log_text().count("disk full")
    finally:
        c.stop()
        c.close()
    restart()
    c = _client(address)
    try:
        value = c.get_async("/df").get(timeout=OP_TIMEOUT_S)[0]
        out["after_restart"] = (
            "last acknowledged" if value == acknowledged else value[:16].decode("ascii", "replace")
        )
    finally:
        c.stop()
        c.close()
    return out


def run_trizab(workdir: Path) -> dict[str, Any]:
    server = TrizabProcess(workdir, tick_time=1000)
    with SmallDisk(server.data_dir, DISK_BYTES) as disk:
        server.start()
        try:

            def restart() -> None:
                server.restart()

            out = _scenario(
                server.address, disk, restart, lambda: server.running, lambda: server.log_path.read_text()
            )
        finally:
            server.stop()
    out["system"] = "trizab"
    return out


def run_zookeeper(workdir: Path) -> dict[str, Any]:
    data = workdir / "data"
    with SmallDisk(data, DISK_BYTES) as disk:
        zk = ApacheZooKeeper(workdir=workdir, tick_time=1000)
        zk.start()
        try:

            def restart() -> None:
                zk.stop()
                zk.start()

            out = _scenario(zk.address, disk, restart, lambda: zk.running, lambda: zk.log_path.read_text())
        finally:
            zk.stop()
    out["system"] = "zookeeper"
    return out


def run_trizab_ensemble(workdir: Path) -> dict[str, Any]:
    """Three members; member 1's dataDir fills up: the other two go on, and it catches up."""
    from testkit.trizab_ensemble import TrizabEnsemble

    out: dict[str, Any] = {"system": "trizab-3"}
    ensemble = TrizabEnsemble(3, workdir=workdir, tick_time=500, init_limit=10, sync_limit=4)
    full = ensemble.members[0]
    myid = (full.data_dir / "myid").read_bytes()
    with SmallDisk(full.data_dir, DISK_BYTES) as disk:
        (full.data_dir / "myid").write_bytes(myid)
        try:
            ensemble.start()
            others = [m for m in ensemble.members if m is not full]
            c = _client(",".join(m.address for m in others))
            try:
                c.create("/ens", b"0")
                out["filler_bytes"] = disk.fill()
                started = time.monotonic()
                done = 0
                for i in range(200):
                    c.set_async("/ens", str(i).encode() + b"." * 1024).get(timeout=OP_TIMEOUT_S)
                    done += 1
                out["writes_on_the_others"] = done
                out["writes_per_s"] = round(done / (time.monotonic() - started))
                mntr = four_letter_word("127.0.0.1", full.client_port, "mntr")
                rows = dict(line.split("\t", 1) for line in mntr.splitlines() if "\t" in line)
                out["full_member_disk_full"] = rows.get("trizab_disk_full")
                out["full_member_alive"] = full.running
                disk.free()
                leader_zxid = c.get_async("/ens").get(timeout=OP_TIMEOUT_S)[1].mzxid
                deadline = time.monotonic() + 30
                caught_up = False
                while time.monotonic() < deadline and not caught_up:
                    on_full = _client(full.address)
                    try:
                        on_full.sync("/ens")
                        caught_up = on_full.get("/ens")[1].mzxid >= leader_zxid
                    finally:
                        on_full.stop()
                        on_full.close()
                    time.sleep(0.2)
                out["full_member_caught_up"] = caught_up
                out["disk_full_log_lines"] = full.log_path.read_text().count("disk full")
            finally:
                c.stop()
                c.close()
        finally:
            ensemble.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat.disk.full", description=__doc__.split("\n")[0])
    parser.add_argument("--system", choices=["trizab", "zookeeper", "both", "trizab-3"], default="both")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    systems = ["trizab", "zookeeper", "trizab-3"] if args.system == "both" else [args.system]
    for system in systems:
        with tempfile.TemporaryDirectory(prefix=f"disk-full-{system}-") as tmp:
            runner = {"trizab": run_trizab, "zookeeper": run_zookeeper, "trizab-3": run_trizab_ensemble}[
                system
            ]
            print(json.dumps(runner(Path(tmp))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
