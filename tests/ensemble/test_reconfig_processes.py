"""Voter reconfiguration with real ``trizab serve`` processes (TrizabEnsemble), kill -9 included.

Three members start with zoo.cfgs listing only themselves; a fourth starts with the
three plus itself and is added by kazoo's ``reconfig``.  Then a member is killed
with SIGKILL and restarted: it must come back with the 4-voter membership (from its
snapshot and log), and the ensemble keeps committing with any 3 of the 4.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

from testkit.trizab_ensemble import TrizabEnsemble

SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="  # super:test
WAIT = 60.0


def client(hosts: str, **kw: object) -> KazooClient:
    c = KazooClient(
        hosts=hosts,
        randomize_hosts=False,
        timeout=10.0,
        connection_retry=KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5),
        **kw,  # type: ignore[arg-type]
    )
    c.start(timeout=WAIT)
    return c


def voters_in(text: bytes) -> set[int]:
    return {int(m.group(1)) for m in re.finditer(rb"server\.(\d+)=[^\n]*:participant", text)}


@pytest.mark.slow
def test_reconfigured_member_restarts_after_kill_9_with_the_new_voters(tmp_path: Path) -> None:
    extra = ["reconfigEnabled=true", f"DigestAuthenticationProvider.superDigest={SUPER_DIGEST}"]
    with TrizabEnsemble(
        4, tick_time=500, init_limit=5, sync_limit=2, extra_config=extra, workdir=tmp_path
    ) as ens:
        for m in ens.members:
            keep = {1, 2, 3, m.sid}
            lines = [
                ln
                for ln in m.config.read_text().splitlines()
                if not (g := re.match(r"server\.(\d+)=", ln)) or int(g.group(1)) in keep
            ]
            m.config.write_text("\n".join(lines) + "\n")
        for m in ens.members[:3]:
            m.start()
        for m in ens.members[:3]:
            m.wait_ready(WAIT)
        joiner = ens.members[3]
        joiner.start()
        joiner.wait_ready(WAIT)  # it serves as a non-voting follower before the reconfig
        line = next(ln for ln in joiner.config.read_text().splitlines() if ln.startswith("server.4="))
        joining = f"{line}:participant;127.0.0.1:{joiner.client_port}"
        admin = client(ens.members[0].address, auth_data=[("digest", "super:test")])
        try:
            t0 = time.monotonic()
            new, _ = admin.reconfig(joining=joining, leaving=None, new_members=None)
            took = time.monotonic() - t0
            assert voters_in(new) == {1, 2, 3, 4}
            admin.create("/before-kill", b"1")
        finally:
            admin.stop()
            admin.close()
        print(f"reconfig (process ensemble) committed in {took * 1000:.1f} ms")
        # Crash a member and bring it back: it must know the 4-voter configuration.
        victim = ens.members[1]
        victim.kill()
        victim.start()
        victim.wait_ready(WAIT)
        c = client(victim.address)
        try:
            c.sync("/zookeeper/config")
            assert voters_in(c.get("/zookeeper/config")[0]) == {1, 2, 3, 4}
            assert c.get("/before-kill")[0] == b"1"
        finally:
            c.stop()
            c.close()
        # 3 of the 4 voters are a quorum: with the restarted member and the new one,
        # losing one original still commits; losing two would not (2 of 4).
        ens.members[2].kill()
        c = client(",".join(m.address for m in ens.members if m.running))
        try:
            c.retry(c.create, "/with-three-of-four", b"ok")
            assert c.get("/with-three-of-four")[0] == b"ok"
        finally:
            c.stop()
            c.close()
        for m in ens.members:
            if m.running:
                m.wait_ready(WAIT)
