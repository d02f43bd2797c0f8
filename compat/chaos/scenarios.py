"""Scripted fault scenarios on real processes, one per session bug found under faults.

``python -m compat.chaos.scenarios NAME --system trizab|zookeeper`` runs one in a private network
namespace and prints one line of JSON with what it observed; tests/chaos/test_session_regressions.py
asserts on it.  Three members, tickTime 2000, initLimit 5, syncLimit 2, a client C with a 6 s
session timeout pinned to follower F (the follower with the highest server id, so that F wins the
election once the leader dies):

* ``half_open``: cut C's packets to F's client port (and F's answers): the TCP connection stays
  half-open, nothing is closed.  The ensemble must expire C's session within about its timeout
  (ZooKeeper 3.8: 8.7 s) and delete its ephemeral node; after the heal C must learn that its
  session expired.
* ``expired_snap``: isolate F from the other members and cut C off from F for 14 s while another
  client writes about 3,000 times on the majority, so that F must rejoin by SNAP.  The leader
  expires C's session.  After the heal C reconnects to F: it must get the expired answer (kazoo
  sees LOST and opens a new session).  Then the leader is killed so that F leads: no write may
  succeed on C's old session.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient, KazooState

from compat.chaos.firewall import Firewall
from compat.chaos.nemesis import member_mode, member_ports
from compat.chaos.netns import NetnsUnavailable, reexec_in_private_netns
from compat.chaos.runner import GID_BASE, srvr_zxid
from testkit.apache_zk import ApacheEnsemble
from testkit.trizab_ensemble import TrizabEnsemble

SESSION_TIMEOUT = 6.0
SCENARIOS = ("half_open", "expired_snap")


class _Watched:
    """A kazoo client pinned to one member that records what it saw of its session."""

    def __init__(self, address: str) -> None:
        self.zk = KazooClient(hosts=address, timeout=SESSION_TIMEOUT)
        self.states: list[tuple[float, str]] = []
        self.zk.add_listener(lambda state: self.states.append((time.monotonic(), str(state))))
        self.zk.start(timeout=30)
        self.session = self.zk.client_id[0]

    def lost(self) -> bool:
        return any(state == KazooState.LOST for _, state in self.states)

    def close(self) -> None:
        try:
            self.zk.stop()
        finally:
            self.zk.close()


def _ensemble(system: str, workdir: Path) -> Any:
    common: dict[str, Any] = {
        "tick_time": 2000,
        "init_limit": 5,
        "sync_limit": 2,
        "workdir": workdir,
        "start_timeout": 90.0,
        "gids": {sid: GID_BASE + sid for sid in (1, 2, 3)},
    }
    return TrizabEnsemble(3, **common) if system == "trizab" else ApacheEnsemble(3, **common)


def _wait(predicate: Any, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def _roles(ensemble: Any) -> tuple[int, int]:
    """(leader's server id, the follower with the highest server id)."""
    assert _wait(lambda: any(member_mode(m) == "leader" for m in ensemble), 60)
    modes = {sid: member_mode(m) for sid, m in enumerate(ensemble, start=1)}
    leader = next(sid for sid, mode in modes.items() if mode == "leader")
    follower = max(sid for sid, mode in modes.items() if mode == "follower")
    return leader, follower


def _half_open(ensemble: Any, firewall: Firewall) -> dict[str, Any]:
    leader, f = _roles(ensemble)
    c = _Watched(ensemble[f - 1].address)
    observer = _Watched(ensemble[leader - 1].address)
    try:
        c.zk.create("/lock", ephemeral=True)
        firewall.cut_clients(f)
        cut = time.monotonic()
        gone = _wait(lambda: observer.zk.exists("/lock") is None, 30.0, 0.2)
        expired_after = round(time.monotonic() - cut, 2) if gone else None
        firewall.heal()
        told = _wait(c.lost, 30.0)
        return {
            "expired_after_s": expired_after,
            "client_told_expired": told,
            "session_timeout_s": SESSION_TIMEOUT,
        }
    finally:
        c.close()
        observer.close()


def _caught_up(member: Any, leader: Any) -> bool:
    """Whether ``member`` has applied everything ``leader`` has (``srvr`` Zxid)."""
    last = srvr_zxid(leader)
    return last is not None and srvr_zxid(member) == last


def _expired_snap(ensemble: Any, firewall: Firewall) -> dict[str, Any]:
    leader, f = _roles(ensemble)
    c = _Watched(ensemble[f - 1].address)
    writer = _Watched(ensemble[leader - 1].address)
    old_session = c.session
    try:
        c.zk.create("/lock", ephemeral=True)
        writer.zk.create("/busy", b"")
        firewall.isolate(f)
        firewall.cut_clients(f)
        cut = time.monotonic()
        writes = 0
        while time.monotonic() - cut < 14.0:
            if writes >= 5_000:  # ten times what a DIFF can carry (committedLog: 500)
                time.sleep(0.1)
                continue
            futures = [writer.zk.set_async("/busy", str(writes + k).encode()) for k in range(50)]
            for fut in futures:
                fut.get(timeout=10)
            writes += len(futures)
        expired_on_majority = writer.zk.exists("/lock") is None
        firewall.heal()
        f_back = _wait(lambda: member_mode(ensemble[f - 1]) == "follower", 60.0)
        # C reconnects to F by itself; what does it learn?
        told = _wait(lambda: c.lost() or (c.zk.connected and c.zk.client_id[0] == old_session), 40.0)
        resumed_old = c.zk.connected and c.zk.client_id is not None and c.zk.client_id[0] == old_session
        ok_on_old = _write_on_session(c, old_session, "/after-heal", 20)
        # Kill the leader: F (the follower with the highest id) leads next, once it has all the
        # leader has: a member whose last zxid is behind the other follower's loses the election
        # (under load F can still be applying the session closes that followed the heal).
        _wait(lambda: _caught_up(ensemble[f - 1], ensemble[leader - 1]), 30.0)
        ensemble[leader - 1].kill()
        f_leads = _wait(lambda: member_mode(ensemble[f - 1]) == "leader", 60.0)
        _wait(lambda: c.zk.connected, 30.0)
        ok_on_old += _write_on_session(c, old_session, "/after-failover", 20)
        return {
            "writes_during_cut": writes,
            "expired_on_majority": expired_on_majority,
            "follower_rejoined": f_back,
            "client_told_expired": told and c.lost(),
            "resumed_expired_session": resumed_old,
            "follower_leads_after_kill": f_leads,
            "writes_ok_on_expired_session": ok_on_old,
        }
    finally:
        c.close()
        writer.close()


def _write_on_session(c: _Watched, session: int, path: str, count: int) -> int:
    """How many of ``count`` creates succeed while the client still holds ``session``."""
    ok = 0
    for k in range(count):
        cid = c.zk.client_id
        if cid is None or cid[0] != session:
            break
        try:
            c.zk.create(f"{path}-{k}", b"", ephemeral=False)
        except Exception:
            continue
        # Made on the old session only if the client still held it afterwards too.
        cid = c.zk.client_id
        if cid is not None and cid[0] == session:
            ok += 1
    return ok


def run(name: str, system: str, workdir: Path) -> dict[str, Any]:
    ensemble = _ensemble(system, workdir)
    with Firewall(member_ports(ensemble)) as firewall:
        firewall.install()
        ensemble.start()
        try:
            scenario = _half_open if name == "half_open" else _expired_snap
            result = scenario(ensemble, firewall)
        finally:
            ensemble.stop()
    return {"scenario": name, "system": system, **result}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m compat.chaos.scenarios")
    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument("--system", choices=("trizab", "zookeeper"), default="trizab")
    args = p.parse_args(argv)
    try:
        reexec_in_private_netns()
    except NetnsUnavailable as exc:
        print(f"compat.chaos.scenarios: cannot isolate the network: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="trizab-scenario-") as tmp:
        result = run(args.scenario, args.system, Path(tmp))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "scenario"
    sys.exit(main())
