"""SASL between ensemble members (quorum.auth.*, DIGEST-MD5), on real processes.

Each test runs a 3-member ensemble on 127.0.0.1 and stops it (by pid) when it ends.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trustme
from kazoo.client import KazooClient
from kazoo.exceptions import SessionClosedRequireSaslError
from kazoo.security import make_acl

from testkit.trizab_ensemble import TrizabEnsemble, TrizabMember
from tests.ensemble.test_quorum_tls import replicated, set_lines, stores, wait_modes

pytestmark = pytest.mark.slow

QUORUM_JAAS = """
QuorumServer {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_test="test-secret";
};
QuorumLearner {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="test"
    password="%s";
};
"""
REQUIRED = [
    "quorum.auth.enableSasl=true",
    "quorum.auth.learnerRequireSasl=true",
    "quorum.auth.serverRequireSasl=true",
]


def jaas(path: Path, password: str = "test-secret") -> str:
    path.write_text(QUORUM_JAAS % password)
    return f"java.security.auth.login.config={path}"


def logs(members: list[TrizabMember]) -> str:
    return "".join(m.log_path.read_text(errors="replace") for m in members)


def test_a_sasl_ensemble_serves_and_a_wrong_password_stays_out(tmp_path: Path) -> None:
    lines = [*REQUIRED, jaas(tmp_path / "jaas.conf")]
    with TrizabEnsemble(
        3, tick_time=200, storage="memory", extra_config=lines, workdir=tmp_path / "ens"
    ) as ens:
        members = list(ens.members)
        wait_modes(members)
        replicated(members, "/over-sasl", b"quorum SASL")
        assert "authenticated with SASL as test" in logs(members)
        third = members[2]
        third.stop()
        set_lines(third, [jaas(tmp_path / "wrong.conf", password="not-the-secret")])
        before = logs(members).count("SASL authentication failed")
        third.start()
        deadline = time.monotonic() + 30
        while logs(members).count("SASL authentication failed") < before + 3:  # refused, each time
            assert time.monotonic() < deadline, third.tail()
            time.sleep(0.1)
        assert third.mode() not in ("leader", "follower"), third.tail()
        assert "not-the-secret" not in logs(members) and "test-secret" not in logs(members)
        replicated(members[:2], "/without-3", b"two of three")
        # The right password again: it joins.
        third.stop()
        set_lines(third, [jaas(tmp_path / "jaas.conf")])
        third.start()
        wait_modes(members)
        replicated(members, "/with-3-again", b"back")


def test_sasl_over_quorum_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    lines = ["sslQuorum=true", *stores(tmp_path / "certs", ca), *REQUIRED, jaas(tmp_path / "jaas.conf")]
    with TrizabEnsemble(
        3, tick_time=200, storage="memory", extra_config=lines, workdir=tmp_path / "ens"
    ) as ens:
        members = list(ens.members)
        wait_modes(members)
        replicated(members, "/tls-and-sasl", b"both")
        assert "authenticated with SASL as test" in logs(members)


def test_a_rolling_enable_of_quorum_sasl(tmp_path: Path) -> None:
    """ZooKeeper's documented order: enableSasl on everywhere, then learnerRequireSasl, then
    serverRequireSasl, one member restart at a time, the ensemble serving throughout."""
    conf = jaas(tmp_path / "jaas.conf")
    with TrizabEnsemble(3, tick_time=200, storage="memory", workdir=tmp_path / "ens") as ens:
        members = list(ens.members)
        wait_modes(members)
        step = 0
        for lines in (
            ["quorum.auth.enableSasl=true", conf],
            ["quorum.auth.enableSasl=true", "quorum.auth.learnerRequireSasl=true", conf],
            [*REQUIRED, conf],
        ):
            for m in members:
                m.stop()
                set_lines(m, lines)
                m.start()
                wait_modes(members)
                step += 1
                replicated(members, f"/rolling-{step}", str(lines).encode())
        assert "authenticated with SASL as test" in logs(members)


def test_client_sasl_required_on_every_member(tmp_path: Path) -> None:
    """sessionRequireClientSASLAuth on an ensemble: a SASL client writes through any member and
    syncs; an anonymous client's first request (sync included: a member's barrier) is refused."""
    path = tmp_path / "jaas.conf"
    path.write_text(
        'Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob="bob-secret"; };\n'
    )
    lines = [
        "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
        "sessionRequireClientSASLAuth=true",
        f"java.security.auth.login.config={path}",
    ]
    with TrizabEnsemble(
        3, tick_time=200, storage="memory", extra_config=lines, workdir=tmp_path / "ens"
    ) as ens:
        members = list(ens.members)
        wait_modes(members)
        for k, m in enumerate(members):
            zk = KazooClient(
                hosts=m.address,
                timeout=10,
                sasl_options={"mechanism": "DIGEST-MD5", "username": "bob", "password": "bob-secret"},
            )
            zk.start(timeout=60)
            try:
                zk.create(f"/sasl-{k}", b"v", acl=[make_acl("sasl", "bob", all=True)])
                zk.sync("/")
                # After the sync this member has every earlier member's write too.
                assert {f"sasl-{j}" for j in range(k + 1)} <= set(zk.get_children("/"))
            finally:
                zk.stop()
                zk.close()
            anonymous = KazooClient(hosts=m.address, timeout=10, connection_retry={"max_tries": 1})
            anonymous.start(timeout=60)
            try:
                with pytest.raises(SessionClosedRequireSaslError):
                    anonymous.sync("/")
            finally:
                anonymous.stop()
                anonymous.close()
